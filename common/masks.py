"""Soft masks shared by self-blending and part-swap paste-back."""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF


def feather(mask: torch.Tensor, sigma: float, floor: float = 1e-3) -> torch.Tensor:
    """Blur ``mask [..., 1, H, W]`` with a Gaussian of ``sigma`` pixels (torchvision, reflect padding).

    Values below ``floor`` become exactly 0, so pixels far from the mask stay bit-identical when the
    mask blends two images (``a + mask * (b - a)``).

    Returns:
        float ``[..., 1, H, W]`` in [0, 1].
    """
    if sigma <= 0:
        return mask.float()
    k = int(2 * round(3 * sigma) + 1)
    out = TF.gaussian_blur(mask.float(), [k, k], [float(sigma), float(sigma)])
    return torch.where(out < floor, torch.zeros_like(out), out).clamp(0, 1)
