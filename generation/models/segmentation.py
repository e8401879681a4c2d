"""The segmentation module: K+1 soft segments plus one affine motion model per part (paper Sec. 3.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from generation.models.blocks import AntiAliasInterpolation2d, Hourglass, make_coordinate_grid


class SegmentationModule(nn.Module):
    """Predicts soft part segments and, per part, a shift (heatmap soft-argmax) and a 2x2 affine.

    Args:
        block_expansion: hourglass base width.
        num_segments: K, the number of parts (channel 0 of the segmentation is the background).
        num_channels: image channels.
        max_features: hourglass width cap.
        num_blocks: hourglass depth.
        temperature: softmax temperature of the shift heatmaps (0.1 in the paper).
        estimate_affine_part: predict the per-part affine A_k (else only shifts).
        scale_factor: the image is anti-alias downsampled by this factor first (0.25: 256 -> 64).

    Forward: image ``[B, 3, H, W]`` in [0, 1] -> dict with ``segmentation [B, K+1, h, w]`` (softmax over
    channels), ``shift [B, K, 2]`` ((x, y) in [-1, 1]) and ``affine [B, K, 2, 2]`` (acting on column
    vectors (x, y)); ``h = H * scale_factor``.
    """

    def __init__(
        self,
        block_expansion: int,
        num_segments: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        estimate_affine_part: bool = False,
        scale_factor: float = 1,
    ) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.temperature = temperature
        self.scale_factor = scale_factor
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        width = self.predictor.out_filters
        self.shift = nn.Conv2d(width, num_segments, kernel_size=7, padding=3)
        if estimate_affine_part:
            self.affine = nn.Conv2d(width, 4 * num_segments, kernel_size=7, padding=3)
            with torch.no_grad():  # identity at initialisation
                self.affine.weight.zero_()
                self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(num_segments))
        else:
            self.affine = None
        self.segmentation = nn.Conv2d(width, num_segments + 1, kernel_size=7, padding=3)
        self.down = AntiAliasInterpolation2d(num_channels, scale_factor) if scale_factor != 1 else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.down is not None:
            x = self.down(x)
        features = self.predictor(x)
        out = {"segmentation": F.softmax(self.segmentation(features), dim=1)}
        logits = self.shift(features)
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, k, h * w) / self.temperature, dim=2).view(b, k, h, w, 1)
        grid = make_coordinate_grid(h, w, logits.dtype, logits.device)
        out["shift"] = (heatmap * grid).sum(dim=(2, 3))  # soft-argmax: expected (x, y) under H_k
        if self.affine is not None:
            a = self.affine(features).view(b, k, 4, h, w)
            out["affine"] = (heatmap.view(b, k, 1, h, w) * a).sum(dim=(3, 4)).view(b, k, 2, 2)
        return out
