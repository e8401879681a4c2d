"""Our ResNeXt-LSTM: per-frame CNN features -> LSTM over time -> real/fake logits.

Fixes the published model's defects without changing its recipe (spec section 3): the LSTM is
batch-first with biases, so it really runs over the frames of each video; the head reads the last (or
mean) hidden state; input is RGB in [0, 1] with ImageNet normalisation inside; label 1 = fake.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from common.errors import CheckpointError
from detection.models.base import IMAGENET_MEAN, IMAGENET_STD, Detector, InputSpec
from detection.models.trunks import build_trunk, load_imagenet


class ResNeXtLSTM(Detector):
    """Video classifier.

    Args:
        trunk: torchvision model name (default ``resnext50_32x4d``) or ``timm:<name>``.
        pretrained: initialise the trunk from local ImageNet weights (``pretrained/``) when a fit starts
            (:meth:`init_pretrained`); building the model, or loading a trained checkpoint, never needs them.
        hidden_size: LSTM width (2048 as the seed report).
        num_layers: LSTM layers.
        dropout: dropout before the linear head (0.4 as the seed report).
        head: ``"last"`` hidden state or ``"mean"`` over time.

    Forward: ``video [B, T, 3, H, W]`` RGB in [0, 1] -> logits ``[B, 2]`` (index 1 = fake). The input spec
    (crop size, margin, frames) is the recipe's (112 px, 1.3, 20) until a fit records the data it trained on.
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
        self.save_hyperparameters()
        self.input_spec = InputSpec(size=112, margin=1.3, frames=20, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.backbone, self.feature_dim = build_trunk(trunk)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.lstm = nn.LSTM(self.feature_dim, hidden_size, num_layers, batch_first=True, bias=True)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, 2)
        self.head = head

    def init_pretrained(self) -> None:
        if not self.hparams.pretrained:
            return
        name = self.hparams.trunk
        if name.startswith("timm:"):
            raise CheckpointError(name, "timm trunks are built from scratch here (no download); use pretrained: false")
        load_imagenet(self.backbone, name)

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.prepare(video))

    def forward_head(self, features: torch.Tensor, b: int, t: int) -> torch.Tensor:
        out, _ = self.lstm(self.pool(features).flatten(1).view(b, t, -1))
        state = out[:, -1] if self.head == "last" else out.mean(dim=1)
        return self.linear(self.dropout(state))

    def feature_layer(self) -> nn.Module:
        return self.backbone

    def describe(self) -> dict[str, str]:
        trunk = self.hparams.trunk
        return {"name": f"ResNeXt-LSTM ({trunk} trunk, LSTM {self.hparams.hidden_size})",
                "weights": "trained with forgelab", "licence": "yours"}  # fmt: skip
