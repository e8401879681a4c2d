"""The reconstruction module: warp the source's features with the part flow and decode (paper Sec. 3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from generation.models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, make_coordinate_grid


def part_motions(seg_target: dict[str, torch.Tensor], seg_source: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-part sampling grids ``[B, K+1, h, w, 2]`` on the target segmentation grid.

    For part k: T_k(z) = A_S,k A_T,k^-1 (z - p_T,k) + p_S,k (paper Eq. 2); channel 0 (background) is the
    identity grid.
    """
    seg = seg_target["segmentation"]
    b, _, h, w = seg.shape
    grid = make_coordinate_grid(h, w, seg.dtype, seg.device)
    k = seg_target["shift"].shape[1]
    z = grid.view(1, 1, h, w, 2) - seg_target["shift"].view(b, k, 1, 1, 2)
    if "affine" in seg_target:
        affine = torch.matmul(seg_source["affine"], torch.inverse(seg_target["affine"]))
        z = torch.matmul(affine.view(b, k, 1, 1, 2, 2), z.unsqueeze(-1)).squeeze(-1)
    motions = z + seg_source["shift"].view(b, k, 1, 1, 2)
    return torch.cat([grid.expand(b, 1, h, w, 2), motions], dim=1)


def dense_flow(seg_target: dict[str, torch.Tensor], seg_source: dict[str, torch.Tensor]) -> torch.Tensor:
    """Soft-assignment flow ``[B, h, w, 2]``: sum_k Y_T,k(z) T_k(z) (paper Eq. 3)."""
    motions = part_motions(seg_target, seg_source)
    return (seg_target["segmentation"].unsqueeze(-1) * motions).sum(dim=1)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize a ``[B, h, w, 2]`` flow to ``size`` (align_corners=False, as the original)."""
    if tuple(flow.shape[1:3]) == tuple(size):
        return flow
    resized = F.interpolate(flow.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False)
    return resized.permute(0, 2, 3, 1)


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``x [B, C, H, W]`` at ``flow`` (resized to H x W) with align_corners=True, zero padding."""
    return F.grid_sample(x, resize_flow(flow, x.shape[2:]), align_corners=True)


def visibility(seg_source: dict[str, torch.Tensor], seg_target: dict[str, torch.Tensor]) -> torch.Tensor:
    """Background visibility ``[B, 1, h, w]``: V = 1 - (sum_k>=1 Y_S,k)(1 - sum_k>=1 Y_T,k).detach().

    Near 0 where the target shows background that the source's foreground hides (to be inpainted).
    """
    fg_source = seg_source["segmentation"][:, 1:].sum(dim=1, keepdim=True)
    fg_target = seg_target["segmentation"][:, 1:].sum(dim=1, keepdim=True).detach()
    return 1 - fg_source * (1 - fg_target)


class ReconstructionModule(nn.Module):
    """Encoder -> part-flow warp (x visibility) -> residual bottleneck -> decoder -> sigmoid.

    Args:
        num_channels: image channels.
        block_expansion: width of the first block.
        max_features: width cap.
        num_down_blocks: encoder downsamplings (2: 256 -> 64, the segmentation resolution).
        num_bottleneck_blocks: residual blocks ``r0 .. r{n-1}``.
        num_segments: K (kept for configuration symmetry; the module has no per-part weights).
        estimate_visibility: multiply the warped features by :func:`visibility`.

    Forward: ``source [B, 3, H, W]``, the two segmentation dicts -> ``prediction [B, 3, H, W]``,
    ``deformed [B, 3, H, W]`` (the source warped by the flow, for display) and, with visibility,
    ``visibility_maps [B, 1, h, w]``.
    """

    def __init__(
        self,
        num_channels: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        num_bottleneck_blocks: int,
        num_segments: int,
        estimate_visibility: bool = False,
        **unused: object,
    ) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.estimate_visibility = estimate_visibility
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)

        def width(level: int) -> int:
            return min(max_features, block_expansion * 2**level)

        self.down_blocks = nn.ModuleList(DownBlock2d(width(i), width(i + 1)) for i in range(num_down_blocks))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(width(num_down_blocks - i), width(num_down_blocks - i - 1)) for i in range(num_down_blocks)
        )
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width(num_down_blocks)))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> features ``[B, C, H / 2^n, W / 2^n]``."""
        out = self.first(image)
        for block in self.down_blocks:
            out = block(out)
        return out

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Features -> image ``[B, 3, H, W]`` in (0, 1)."""
        out = self.bottleneck(features)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out))

    def warp_features(
        self, features: torch.Tensor, seg_target: dict[str, torch.Tensor], seg_source: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Warp source features into the target: returns ``(warped x V, flow [B, h, w, 2], V or None)``."""
        flow = dense_flow(seg_target, seg_source)
        out = warp(features, flow)
        vis = None
        if self.estimate_visibility:
            vis = visibility(seg_source, seg_target)
            if vis.shape[2:] != out.shape[2:]:
                vis = F.interpolate(vis, size=out.shape[2:], mode="bilinear", align_corners=False)
            out = out * vis
        return out, flow, vis

    def forward(
        self, source_image: torch.Tensor, seg_target: dict[str, torch.Tensor], seg_source: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        out, flow, vis = self.warp_features(self.encode(source_image), seg_target, seg_source)
        result = {"deformed": warp(source_image, flow), "prediction": self.decode(out)}
        if vis is not None:
            result["visibility_maps"] = vis
        return result
