"""The published ResNeXt-LSTM, exactly as its checkpoints expect it (spec section 1).

Quirks kept on purpose so that ``model_<acc>_acc_<frames>_frames_<tag>.pt`` files load and behave as
published: a bias-free LSTM with ``batch_first=False`` (so for one video the LSTM sees T "batch"
elements of sequence length 1 and the logits depend only on the last frame), logits from the last
position, dropout on the logits, class 0 = FAKE. The adapter converts our RGB [0, 1] clips to the 112x112
BGR input the published model was trained on and its output to our convention (index 1 = fake).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.checkpoints import read_checkpoint
from common.errors import CheckpointError
from detection.models.resnext_lstm import IMAGENET_MEAN, IMAGENET_STD
from detection.models.trunks import torchvision_trunk

LEGACY_NAME = re.compile(r"^model_(?P<acc>[\d.]+)_acc_(?P<frames>\d+)_frames_(?P<tag>.+)\.pt$")
LEGACY_SIZE = 112


class LegacyResNeXtLSTM(nn.Module):
    """The published architecture with its exact parameter names (``model.*``, ``lstm.*``, ``linear1.*``).

    Forward: ``x [B, T, 3, 112, 112]`` (BGR, normalised with the RGB ImageNet statistics) ->
    ``(feature maps [B*T, 2048, 4, 4], logits [B, 2])`` with class 0 = FAKE, class 1 = REAL.
    """

    def __init__(self) -> None:
        super().__init__()
        self.model, width = torchvision_trunk("resnext50_32x4d")
        self.lstm = nn.LSTM(width, 2048, 1, bias=False)  # as published: bias=False, batch_first=False
        self.linear1 = nn.Linear(2048, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dp = nn.Dropout(0.4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = x.shape[:2]
        frames = x.flatten(0, 1)
        if next(self.model.parameters()).is_contiguous(memory_format=torch.channels_last):
            frames = frames.contiguous(memory_format=torch.channels_last)
        fmap = self.model(frames)
        feats = self.avgpool(fmap).view(b, t, -1)
        out, _ = self.lstm(feats, None)  # (B, T, H) read as (seq=B, batch=T): the published behaviour
        return fmap, self.dp(self.linear1(out[:, -1, :]))


def legacy_frames(path: str | Path) -> int:
    """The sequence length a published file was trained with, from its name (token 3 split on ``_``)."""
    m = LEGACY_NAME.match(Path(path).name)
    if m is None:
        raise CheckpointError(path, "not a published file name (model_<acc>_acc_<frames>_frames_<tag>.pt)")
    return int(m.group("frames"))


def is_legacy_file(path: str | Path) -> bool:
    """Whether ``path`` is named like a published ResNeXt-LSTM checkpoint."""
    return LEGACY_NAME.match(Path(path).name) is not None


class LegacyAdapter(nn.Module):
    """Our interface around the published model: RGB [0, 1] clips in, our logits (index 1 = fake) out.

    Videos are run one at a time, as the published predictor did, so its batch-mixing LSTM quirk never
    lets one video's frames influence another's score.
    """

    def __init__(self, model: LegacyResNeXtLSTM, frames: int) -> None:
        super().__init__()
        self.model = model
        self.frames = frames
        self.size = LEGACY_SIZE
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)

    def to_legacy_input(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` RGB [0, 1] -> 112x112, BGR, normalised with the RGB statistics."""
        b, t = video.shape[:2]
        x = video.flatten(0, 1)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        x = x.view(b, t, 3, self.size, self.size).flip(2)  # RGB -> BGR
        return (x - self.mean) / self.std

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.to_legacy_input(video)
        logits = torch.cat([self.model(x[i : i + 1])[1] for i in range(len(x))])
        return logits.flip(1)  # published [fake, real] -> ours [real, fake]


def load_legacy(path: str | Path) -> LegacyAdapter:
    """Build the published architecture and load a published ``.pt`` state dict (``weights_only=True``)."""
    frames = legacy_frames(path)
    state = read_checkpoint(path)
    model = LegacyResNeXtLSTM()
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(path, f"not the published ResNeXt-LSTM state dict: {what}")
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        raise CheckpointError(
            path, f"{bad[0]} has shape {tuple(state[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)}"
        )
    model.load_state_dict(state)
    return LegacyAdapter(model.eval(), frames).eval()
