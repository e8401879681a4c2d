"""Part swapping in feature space (paper Sec. 4.2): blend the target's features with the source's warped
features through a mask made of chosen segments, then decode."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from generation.models.reconstruction import ReconstructionModule, warp


def blend_mask(segmentation: torch.Tensor, parts: Sequence[int], hard: bool = False) -> torch.Tensor:
    """Sum of the chosen segment channels ``[B, 1, h, w]``; ``hard`` thresholds the sum at 0.5.

    Args:
        segmentation: ``[B, K+1, h, w]`` soft segments (channel 0 = background).
        parts: segment indices in 1..K.
        hard: binarise (the sum > 0.5), as the original ``--hard``.
    """
    k = segmentation.shape[1] - 1
    bad = [p for p in parts if not 1 <= int(p) <= k]
    if bad:
        raise ValueError(f"part {bad[0]} is outside 1..{k}")
    mask = segmentation[:, [int(p) for p in parts]].sum(dim=1, keepdim=True)
    return (mask > 0.5).to(mask.dtype) if hard else mask


def swap_parts(
    reconstruction_module: ReconstructionModule,
    source: torch.Tensor,
    target: torch.Tensor,
    seg_source: dict[str, torch.Tensor],
    seg_target: dict[str, torch.Tensor],
    mask: torch.Tensor,
    use_source_segmentation: bool = False,
    source_features: torch.Tensor | None = None,
) -> torch.Tensor:
    """Transplant the masked parts of ``source`` into ``target``.

    features = enc(target) (1 - M) + V warp(enc(source)) M, then the decoder. When
    ``use_source_segmentation`` the mask (drawn on the source) is first warped into the target with the
    same part flow.

    Args:
        reconstruction_module: the trained generator.
        source: ``[B, 3, H, W]`` face giving the parts.
        target: ``[B, 3, H, W]`` frame receiving them.
        seg_source: segmentation output for ``source``.
        seg_target: segmentation output for ``target``.
        mask: ``[B, 1, h, w]`` blend mask (see :func:`blend_mask`).
        use_source_segmentation: the mask is in source coordinates.
        source_features: ``enc(source)`` when already computed (a video swap encodes its source once).

    Returns:
        prediction ``[B, 3, H, W]`` in (0, 1).
    """
    rec = reconstruction_module
    features_s = rec.encode(source) if source_features is None else source_features
    warped, flow, _ = rec.warp_features(features_s, seg_target, seg_source)
    if use_source_segmentation:
        mask = warp(mask, flow)
    if mask.shape[2:] != warped.shape[2:]:
        mask = F.interpolate(mask, size=warped.shape[2:], mode="bilinear", align_corners=False)
    features = rec.encode(target) * (1 - mask) + warped * mask
    return rec.decode(features)
