"""Our ResNeXt-LSTM: per-frame CNN features -> LSTM over time -> real/fake logits.

Fixes the published model's defects without changing its recipe (spec section 3): the LSTM is
batch-first with biases, so it really runs over the frames of each video; the head reads the last (or
mean) hidden state; input is RGB in [0, 1] with ImageNet normalisation inside; label 1 = fake.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from detection.models.trunks import build_trunk

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResNeXtLSTM(nn.Module):
    """Video classifier.

    Args:
        trunk: torchvision model name (default ``resnext50_32x4d``) or ``timm:<name>``.
        pretrained: initialise the trunk from local ImageNet weights (``pretrained/``).
        hidden_size: LSTM width (2048 as the seed report).
        num_layers: LSTM layers.
        dropout: dropout before the linear head (0.4).
        head: ``"last"`` hidden state or ``"mean"`` over time.

    Forward: ``video [B, T, 3, H, W]`` RGB in [0, 1] -> logits ``[B, 2]`` (index 1 = fake).
    """

    def __init__(
        self,
        trunk: str = "resnext50_32x4d",
        pretrained: bool = False,
        hidden_size: int = 2048,
        num_layers: int = 1,
        dropout: float = 0.4,
        head: Literal["last", "mean"] = "last",
    ) -> None:
        super().__init__()
        if head not in ("last", "mean"):
            raise ValueError(f"head must be last or mean, not {head!r}")
        self.trunk, self.feature_dim = build_trunk(trunk, pretrained)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.lstm = nn.LSTM(self.feature_dim, hidden_size, num_layers, batch_first=True, bias=True)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, 2)
        self.head = head
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` -> trunk feature maps ``[B*T, C, h, w]``."""
        x = (video.flatten(0, 1) - self.mean) / self.std
        if next(self.trunk.parameters()).is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.trunk(x)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        feats = self.pool(self.frame_features(video)).flatten(1).view(b, t, -1)
        out, _ = self.lstm(feats)
        state = out[:, -1] if self.head == "last" else out.mean(dim=1)
        return self.linear(self.dropout(state))
