"""Seed 002's fused detector: a steganalysis residual-noise stream, an RGB trunk, facial-landmark cues and
video-quality cues, each of which can be switched off (the ablation is one override per cue).

* Noise stream: the 30 fixed SRM high-pass kernels with a truncated linear unit at 3 (:class:`SRMFilters`), and/or
  a learnable constrained (Bayar) first layer (:class:`BayarConv2d`), then a small CNN (five stride-2 stages).
* RGB stream: a torchvision / timm trunk (:func:`build_trunk`).
* The two maps, brought to one grid, are fused by a 1x1 convolution: the per-frame feature map (CAM reads it).
* Landmark and quality cues per frame (:mod:`detection.models.cues`; no gradients), summarised over the clip
  (means, spreads, landmark jitter, frame-to-frame changes), each through a small MLP.
* Head: the fused map pooled over space and time, concatenated with the cue embeddings -> dropout -> linear.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import ConfigError
from detection.models.base import IMAGENET_MEAN, IMAGENET_STD, Detector, InputSpec
from detection.models.cues import (
    LANDMARK_SUMMARY_WIDTH,
    LANDMARK_WIDTH,
    QUALITY_SUMMARY_WIDTH,
    QUALITY_WIDTH,
    landmark_cues,
    quality_cues,
    summarise_landmarks,
    summarise_quality,
)
from detection.models.srm import BayarConv2d, SRMFilters
from detection.models.trunks import build_trunk, load_imagenet

Noise = Literal["srm", "bayar", "both", "none"]


def conv_stages(in_channels: int, width: int, stages: int = 5) -> nn.Sequential:
    """``stages`` of conv 3x3 stride 2 + BN + ReLU (width doubling up to ``8 * width``): ``[N, C, S, S]`` ->
    ``[N, min(8 width, width 2^(stages-1)), S / 2^stages, S / 2^stages]``."""
    layers: list[nn.Module] = []
    c = in_channels
    for i in range(stages):
        out = width * min(2**i, 8)
        layers += [nn.Conv2d(c, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        c = out
    return nn.Sequential(*layers)


def cue_mlp(width: int, hidden: int) -> nn.Sequential:
    """A clip's cue vector ``[B, width]`` -> ``[B, hidden]`` (batch-normalised first: the cues' scales differ)."""
    return nn.Sequential(nn.BatchNorm1d(width), nn.Linear(width, hidden), nn.ReLU(inplace=True))


class FusionMaps(nn.Module):
    """The RGB and noise streams fused into one per-frame map: ``[N, 3, S, S]`` normalised RGB and ``[N, 3, S, S]``
    RGB on a 0-255 scale -> ``[N, width, S / 32, S / 32]``."""

    def __init__(self, trunk: str | None, noise: Noise, noise_width: int, width: int) -> None:
        super().__init__()
        self.rgb, rgb_width = build_trunk(trunk) if trunk else (None, 0)
        self.srm = SRMFilters(threshold=3.0) if noise in ("srm", "both") else None
        self.bayar = BayarConv2d(3, 3, 5) if noise in ("bayar", "both") else None
        residuals = (30 if self.srm is not None else 0) + (3 if self.bayar is not None else 0)
        self.noise = conv_stages(residuals, noise_width) if residuals else None
        noise_out = noise_width * 8 if residuals else 0
        self.fuse = nn.Sequential(nn.Conv2d(rgb_width + noise_out, width, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))  # fmt: skip

    def forward(self, rgb: torch.Tensor, raw255: torch.Tensor) -> torch.Tensor:
        maps = []
        if self.rgb is not None:
            maps.append(self.rgb(rgb))
        if self.noise is not None:
            residuals = [m(raw255) for m in (self.srm, self.bayar) if m is not None]
            maps.append(self.noise(torch.cat(residuals, 1)))
        grid = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == grid else F.adaptive_avg_pool2d(m, grid) for m in maps]
        return self.fuse(torch.cat(maps, 1))


class MultiCueDetector(Detector):
    """Residual noise + RGB + landmarks + quality (seed 002).

    Args:
        trunk: RGB trunk (torchvision name or ``timm:<name>``); ``None`` switches the RGB stream off (with
            ``noise: none`` too, only the hand-crafted cues remain: no feature map, CAM shows nothing).
        pretrained: initialise the RGB trunk from local ImageNet weights (``pretrained/``) when a fit starts.
        noise: ``srm`` (fixed 30-kernel bank), ``bayar`` (learnable constrained layer), ``both`` or ``none``.
        noise_width: width of the noise CNN's first stage (8x at its last).
        landmarks: use the landmark cues (dlib's 68 points, their ratios and jitter).
        quality: use the blur / sharpness cues.
        width: channels of the fused map.
        dropout: before the linear head.
        size: face-crop side.
        margin: face-crop margin (the landmark predictor's face box is the crop's centre ``1 / margin``).
        frames: frames per clip (landmark jitter and quality changes need at least 2).

    Forward: ``video [B, T, 3, H, W]`` RGB in [0, 1] -> logits ``[B, 2]`` (index 1 = fake).
    ``forward_features`` returns ``[B*T, width + cues, h, w]``: the fused map, then each frame's cue vector
    repeated over the grid (so the head reads the cues through the one interface); ``feature_layer`` is the fused
    map's module.
    """

    def __init__(self, trunk: str | None = "resnet18", pretrained: bool = False, noise: Noise = "srm",
                 noise_width: int = 32,
                 landmarks: bool = True, quality: bool = True, width: int = 256, dropout: float = 0.2,
                 size: int = 128, margin: float = 1.3, frames: int = 8) -> None:  # fmt: skip
        super().__init__()
        trunk = None if trunk is None or str(trunk).lower() in ("", "none", "null") else trunk  # off from a CLI
        if noise not in ("srm", "bayar", "both", "none"):
            raise ConfigError(f"noise must be srm, bayar, both or none, not {noise!r}")
        self.save_hyperparameters()
        self.input_spec = InputSpec(size=size, margin=margin, frames=frames, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        if trunk is None and noise == "none" and not (landmarks or quality):
            raise ConfigError("every cue is switched off: keep the RGB trunk, a noise stream, landmarks or quality")
        self.maps = FusionMaps(trunk, noise, noise_width, width) if trunk is not None or noise != "none" else None
        self.map_width = width if self.maps is not None else 0
        self.identity = nn.Identity()  # the hook target when only the hand-crafted cues are used
        self.landmark_mlp = cue_mlp(LANDMARK_SUMMARY_WIDTH, 64) if landmarks else None
        self.quality_mlp = cue_mlp(QUALITY_SUMMARY_WIDTH, 32) if quality else None
        self.cue_width = (LANDMARK_WIDTH if landmarks else 0) + (QUALITY_WIDTH if quality else 0)
        head_in = self.map_width + (64 if landmarks else 0) + (32 if quality else 0)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(head_in, 2)

    def init_pretrained(self) -> None:
        if self.hparams.pretrained and self.maps.rgb is not None:
            load_imagenet(self.maps.rgb, self.hparams.trunk)

    def cues(self, crops: torch.Tensor) -> torch.Tensor:
        """Per-frame cues ``[N, cue_width]`` (landmarks then quality) of crops ``[N, 3, S, S]`` RGB in [0, 1]."""
        parts = []
        if self.hparams.landmarks:
            parts.append(landmark_cues(crops, self.input_spec.margin))
        if self.hparams.quality:
            parts.append(quality_cues(crops, self.input_spec.margin))
        return torch.cat(parts, 1) if parts else crops.new_zeros(len(crops), 0)

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        spec = self.input_spec
        crops = video.flatten(0, 1)
        if crops.shape[-1] != spec.size or crops.shape[-2] != spec.size:
            crops = F.interpolate(crops, size=(spec.size, spec.size), mode="bilinear", antialias=True).clamp(0, 1)
        cues = self.cues(crops).float()  # float32 even under bf16 autocast: landmark jitter is a small difference
        if self.maps is None:
            return self.identity(cues[:, :, None, None])
        fused = self.maps(self.prepare(video), crops * 255)
        return torch.cat([fused.float(), cues[:, :, None, None].expand(-1, -1, *fused.shape[-2:])], 1)

    def forward_head(self, features: torch.Tensor, b: int, t: int) -> torch.Tensor:
        width = self.map_width
        pooled = features[:, :width].mean((-1, -2)).view(b, t, width).mean(1)
        cues = features[:, width:, 0, 0].float().view(b, t, -1)
        parts = [pooled]
        if self.landmark_mlp is not None:
            parts.append(self.landmark_mlp(summarise_landmarks(cues[..., :LANDMARK_WIDTH])).to(pooled.dtype))
        if self.quality_mlp is not None:
            parts.append(self.quality_mlp(summarise_quality(cues[..., -QUALITY_WIDTH:])).to(pooled.dtype))
        return self.linear(self.dropout(torch.cat(parts, 1)))

    def feature_layer(self) -> nn.Module:
        return self.maps if self.maps is not None else self.identity

    def explain(self, clip: torch.Tensor) -> dict[str, np.ndarray]:
        if self.maps is None:
            raise ConfigError("this detector reads only landmark and quality numbers: it has no map to draw (--cam)")
        return super().explain(clip)

    def describe(self) -> dict[str, Any]:
        from common.landmarks import LICENCE

        hp = self.hparams
        cues = [c for c, on in (("RGB " + str(hp.trunk), hp.trunk), (f"noise {hp.noise}", hp.noise != "none"),
                                ("landmarks", hp.landmarks), ("quality", hp.quality)) if on]  # fmt: skip
        licence = "yours" + (f"; landmarks: {LICENCE}" if hp.landmarks else "")
        return {"name": f"Residual noise + landmarks + quality ({', '.join(cues)})", "weights": "trained with forgelab",
                "licence": licence}  # fmt: skip
