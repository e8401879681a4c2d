"""Class-activation heatmaps (Grad-CAM on the trunk's last convolutional block) for ``detect --cam``.

For a clip, the gradient of the fake logit with respect to each frame's trunk feature map weights that
map's channels (Selvaraju et al., ICCV 2017, Eq. 1-2); the ReLU of the weighted sum, normalised to
[0, 1] over the clip, shows where the detector looked.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def trunk_of(module: nn.Module) -> nn.Module:
    """The CNN trunk of our model (``.trunk``) or of the published adapter (``.model.model``)."""
    if hasattr(module, "trunk"):
        return module.trunk
    return module.model.model


def grad_cam(module: nn.Module, clip: torch.Tensor) -> np.ndarray:
    """Heatmaps ``[T, S, S]`` in [0, 1] for one clip ``[1, T, 3, S, S]`` (RGB [0, 1]) toward "fake"."""
    captured: list[torch.Tensor] = []

    def keep(_: nn.Module, __: tuple, out: torch.Tensor) -> None:
        out.retain_grad()
        captured.append(out)

    handle = trunk_of(module).register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = module(clip)
            logits[0, 1].backward()
    finally:
        handle.remove()
        module.zero_grad(set_to_none=True)
    fmap = captured[-1]
    weights = fmap.grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * fmap).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=clip.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return (cam / cam.max().clamp_min(1e-8)).cpu().numpy()


def overlay(crop_region: np.ndarray, heat: np.ndarray, strength: float = 0.45) -> np.ndarray:
    """Blend a jet-coloured ``heat [h, w]`` in [0, 1] over ``crop_region [h, w, 3]`` uint8."""
    from matplotlib import colormaps

    colours = colormaps["jet"](heat)[..., :3] * 255
    alpha = strength * heat[..., None]
    return (crop_region * (1 - alpha) + colours * alpha).round().clip(0, 255).astype(np.uint8)
