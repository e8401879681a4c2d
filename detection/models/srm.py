"""Steganalysis residual filters (seed 002's residual-noise stream): the 30 basic SRM high-pass kernels of
Fridrich and Kodovsky ("Rich Models for Steganalysis of Digital Images", IEEE TIFS 2012), generated from their
definitions, as a fixed layer with a truncated linear unit; and Bayar and Stamm's constrained convolution
(IH&MMSec 2016), a learnable prediction-error filter.

Kernel order (5x5, integer, zero-sum; offsets ``(dy, dx)`` from the centre, directions
``d = (-1,0), (-1,1), (0,1), (1,1), (1,0), (1,-1), (0,-1), (-1,-1)``):

* 0-7, 1st order: centre -1, +1 at ``d``;
* 8-11, 2nd order: centre -2, +1 at ``+d`` and ``-d`` for the vertical, anti-diagonal, horizontal, diagonal axis;
* 12-19, 3rd order: centre -3, +3 at ``d``, +1 at ``-d``, -1 at ``2d``;
* 20, SQUARE 3x3 ("KB"); 21-24, its EDGE halves (top, right, bottom, left kept);
* 25, SQUARE 5x5 ("KV"); 26-29, its EDGE halves (top, right, bottom, left kept).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DIRECTIONS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
AXES = ((-1, 0), (-1, 1), (0, 1), (1, 1))  # vertical, anti-diagonal, horizontal, diagonal
KB = ((-1, 2, -1), (2, -4, 2), (-1, 2, -1))
KV = ((-1, 2, -2, 2, -1), (2, -6, 8, -6, 2), (-2, 8, -12, 8, -2), (2, -6, 8, -6, 2), (-1, 2, -2, 2, -1))


def _halves(square: torch.Tensor, rows: int) -> list[torch.Tensor]:
    """``square`` with its outer ``rows`` rows or columns zeroed so that the top, right, bottom, left half stays."""
    top, right, bottom, left = (square.clone() for _ in range(4))
    top[-rows:] = 0
    right[:, :rows] = 0
    bottom[:rows] = 0
    left[:, -rows:] = 0
    return [top, right, bottom, left]


def srm_kernels() -> torch.Tensor:
    """The 30 basic SRM kernels, float32 ``[30, 1, 5, 5]``, unnormalised (module docstring for the order)."""
    kernels = []

    def blank() -> torch.Tensor:
        return torch.zeros(5, 5)

    for dy, dx in DIRECTIONS:  # 1st order
        k = blank()
        k[2, 2], k[2 + dy, 2 + dx] = -1, 1
        kernels.append(k)
    for dy, dx in AXES:  # 2nd order
        k = blank()
        k[2, 2], k[2 + dy, 2 + dx], k[2 - dy, 2 - dx] = -2, 1, 1
        kernels.append(k)
    for dy, dx in DIRECTIONS:  # 3rd order
        k = blank()
        k[2, 2], k[2 + dy, 2 + dx], k[2 - dy, 2 - dx], k[2 + 2 * dy, 2 + 2 * dx] = -3, 3, 1, -1
        kernels.append(k)
    kb = blank()
    kb[1:4, 1:4] = torch.tensor(KB, dtype=torch.float32)
    kernels.append(kb)
    kernels.extend(_pad(h) for h in _halves(kb[1:4, 1:4], 1))
    kv = torch.tensor(KV, dtype=torch.float32)
    kernels.append(kv)
    kernels.extend(_halves(kv, 2))
    return torch.stack(kernels)[:, None]


def _pad(k3: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(5, 5)
    out[1:4, 1:4] = k3
    return out


class SRMFilters(nn.Module):
    """The fixed 30-kernel SRM layer on a grey image, then a truncated linear unit (clamp to ``+-threshold``).

    Forward: ``x [N, 3, H, W]`` RGB on a 0-255 scale -> residuals ``[N, 30, H, W]`` (padding 2).
    """

    def __init__(self, threshold: float = 3.0) -> None:
        super().__init__()
        self.threshold = threshold
        self.register_buffer("weight", srm_kernels())
        self.register_buffer("grey", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = (x * self.grey.to(x.dtype)).sum(1, keepdim=True)
        return F.conv2d(grey, self.weight.to(x.dtype), padding=2).clamp(-self.threshold, self.threshold)


class BayarConv2d(nn.Module):
    """Constrained convolution: each filter's centre weight is -1 and its other weights sum to +1, so it outputs a
    prediction error. Only the off-centre weights are stored (initialised positive); the constraint is applied in
    every forward pass (differentiable), never by projection after a step.

    Forward: ``x [N, C, H, W]`` -> ``[N, out_channels, H, W]`` (same padding).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, kernel_size: int = 5) -> None:
        super().__init__()
        self.shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.centre = kernel_size * kernel_size // 2
        self.off = nn.Parameter(torch.rand(out_channels, in_channels, kernel_size * kernel_size - 1) + 0.01)

    def kernel(self) -> torch.Tensor:
        """The constrained weights ``[out, in, k, k]``."""
        off = self.off / self.off.sum(-1, keepdim=True).clamp_min(1e-6)
        minus_one = -torch.ones(*off.shape[:2], 1, dtype=off.dtype, device=off.device)
        full = torch.cat([off[..., : self.centre], minus_one, off[..., self.centre :]], dim=-1)
        return full.view(self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel(), padding=self.shape[-1] // 2)
