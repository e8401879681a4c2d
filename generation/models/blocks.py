"""Building blocks: coordinate grid, anti-aliased downsampling, conv blocks and the hourglass.

Coordinates are normalised to [-1, 1] with align_corners=True semantics (pixel column j -> 2j/(W-1) - 1)
and ordered (x, y) in the last dimension, as ``grid_sample`` expects.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(height: int, width: int, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> torch.Tensor:  # fmt: skip
    """The identity sampling grid ``[H, W, 2]``: ``grid[i, j] = (2j/(W-1) - 1, 2i/(H-1) - 1)``."""
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    x = 2 * (x / (width - 1)) - 1
    y = 2 * (y / (height - 1)) - 1
    return torch.stack([x.view(1, -1).expand(height, width), y.view(-1, 1).expand(height, width)], dim=2)


def gaussian_kernel(sigma: float) -> tuple[torch.Tensor, int, int]:
    """Normalised 2-D Gaussian of width ``2 round(4 sigma) + 1`` and its (before, after) zero padding."""
    size = 2 * round(sigma * 4) + 1
    before = size // 2
    after = before - 1 if size % 2 == 0 else before
    coords = torch.arange(size, dtype=torch.float32)
    g = torch.exp(-((coords - (size - 1) / 2) ** 2) / (2 * sigma**2))
    kernel = g.view(-1, 1) * g.view(1, -1)
    return kernel / kernel.sum(), before, after


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur (sigma = (1/scale - 1)/2) then stride ``1/scale`` subsampling; scale 1 passes through.

    The kernel is the buffer ``weight [C, 1, k, k]`` (saved in the published checkpoints as
    ``down.weight``). Input ``[B, C, H, W]`` -> ``[B, C, H*scale, W*scale]``.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.groups = channels
        if scale == 1:
            self.register_buffer("weight", torch.ones(channels, 1, 1, 1), persistent=False)
            self.pad = (0, 0, 0, 0)
            self.step = 1
            return
        kernel, before, after = gaussian_kernel((1 / scale - 1) / 2)
        self.register_buffer("weight", kernel.expand(channels, 1, *kernel.shape).contiguous())
        self.pad = (before, after, before, after)
        self.step = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        out = F.conv2d(F.pad(x, self.pad), self.weight.to(x.dtype), groups=self.groups)
        return out[:, :, :: self.step, :: self.step]


class SameBlock2d(nn.Module):
    """conv -> BatchNorm -> ReLU at the same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(SameBlock2d):
    """conv -> BatchNorm -> ReLU -> 2x2 average pooling (halves H and W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(super().forward(x), 2)


class UpBlock2d(SameBlock2d):
    """nearest x2 upsampling -> conv -> BatchNorm -> ReLU (doubles H and W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: x + conv2(relu(norm2(conv1(relu(norm1(x))))))."""

    def __init__(self, features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(features, affine=True)
        self.norm2 = nn.BatchNorm2d(features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * 2**level)


class Encoder(nn.Module):
    """Hourglass encoder: ``num_blocks`` DownBlock2d; returns ``[x, e1, ..., e_n]`` for the skips."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1),
            )  # fmt: skip
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: UpBlock2d + concatenation with the matching skip, ending with the input."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            in_filters = (1 if i == num_blocks - 1 else 2) * _width(block_expansion, max_features, i + 1)
            blocks.append(UpBlock2d(in_filters, _width(block_expansion, max_features, i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style hourglass: ``[B, in, H, W]`` -> ``[B, block_expansion + in, H, W]``."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
