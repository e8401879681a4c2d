"""The published ResNeXt-LSTM, exactly as its checkpoints expect it (spec section 1), behind our interface.

Quirks kept on purpose so that ``model_<acc>_acc_<frames>_frames_<tag>.pt`` files load and behave as
published: a bias-free LSTM with ``batch_first=False`` (so for one video the LSTM sees T "batch"
elements of sequence length 1 and the logits depend only on the last frame), logits from the last
position, dropout on the logits, class 0 = FAKE. :class:`PublishedResNeXtLSTM` feeds it what it was trained
on: the face box itself (no margin) stretched to 112x112, BGR, normalised with the RGB ImageNet statistics;
it runs videos one at a time and flips the logits to our convention (index 1 = fake).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from common.errors import CheckpointError
from common.weights import fit_state_dict, read_checkpoint
from detection.models.base import IMAGENET_MEAN, IMAGENET_STD, Detector, InputSpec
from detection.models.trunks import torchvision_trunk

LEGACY_NAME = re.compile(r"^model_(?P<acc>[\d.]+)_acc_(?P<frames>\d+)_frames_(?P<tag>.+)\.pt$")
PUBLISHED_SPEC = InputSpec(size=112, margin=1.0, square=False, frames=20, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                           colour="BGR")  # fmt: skip


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

    def head(self, fmap: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """Feature maps ``[B*T, 2048, h, w]`` -> published logits ``[B, 2]``."""
        out, _ = self.lstm(self.avgpool(fmap).view(b, t, -1), None)  # (B, T, H) read as (seq=B, batch=T)
        return self.dp(self.linear1(out[:, -1, :]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = x.shape[:2]
        fmap = self.model(x.flatten(0, 1))
        return fmap, self.head(fmap, b, t)


def legacy_frames(path: str | Path) -> int:
    """The sequence length a published file was trained with, from its name (token 3 split on ``_``)."""
    m = LEGACY_NAME.match(Path(path).name)
    if m is None:
        raise CheckpointError(path, "not a published file name (model_<acc>_acc_<frames>_frames_<tag>.pt)")
    return int(m.group("frames"))


def is_legacy_file(path: str | Path) -> bool:
    """Whether ``path`` is named like a published ResNeXt-LSTM checkpoint."""
    return LEGACY_NAME.match(Path(path).name) is not None


class PublishedResNeXtLSTM(Detector):
    """A published ``model_<acc>_acc_<frames>_frames_<tag>.pt`` file as a :class:`Detector`.

    Args:
        path: the published file; its frame count comes from its name.
    """

    fixed_size = True

    def __init__(self, path: str) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.input_spec = PUBLISHED_SPEC.replace(frames=legacy_frames(path))
        self.model = LegacyResNeXtLSTM()
        fit_state_dict(self.model, read_checkpoint(path), path, "the published ResNeXt-LSTM state dict")
        self.eval()

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        return self.model.model(self.prepare(video))

    def forward_head(self, features: torch.Tensor, b: int, t: int) -> torch.Tensor:
        # one video at a time, as the published predictor: its batch-mixing LSTM never mixes videos
        per_video = features.view(b, t, *features.shape[1:])
        logits = torch.cat([self.model.head(per_video[i], 1, t) for i in range(b)])
        return logits.flip(1)  # published [fake, real] -> ours [real, fake]

    def feature_layer(self) -> nn.Module:
        return self.model.model

    def describe(self) -> dict[str, str]:
        return {"name": "ResNeXt-LSTM (published)", "weights": Path(self.hparams.path).name,
                "source": "the seed report's published checkpoint", "licence": "see its source"}  # fmt: skip
