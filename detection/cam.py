"""Class-activation heatmaps for ``detect --cam``: Grad-CAM (Selvaraju et al., ICCV 2017, Eq. 1-2) from the
maintained ``grad-cam`` package, on the layer every detector declares (:meth:`Detector.feature_layer`).

For a clip, the gradient of the fake logit with respect to each frame's feature map weights that map's
channels; the ReLU of the weighted sum, normalised to [0, 1] per frame, shows where the detector looked.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn


class ClipGradCAM(GradCAM):
    """Grad-CAM for a clip ``[1, T, 3, H, W]``: the target layer's T per-frame maps are scaled to ``H x W``
    (the package reads a 5-D input as one 3-D volume otherwise)."""

    def get_target_width_height(self, input_tensor: torch.Tensor) -> tuple[int, int]:
        return input_tensor.size(-1), input_tensor.size(-2)


def grad_cam(detector: nn.Module, clip: torch.Tensor) -> np.ndarray:
    """Heatmaps ``[T, S, S]`` in [0, 1] for one clip ``[1, T, 3, S, S]`` (RGB [0, 1]) toward "fake", on the layer a
    :class:`~detection.models.Detector` declares (``feature_layer()``)."""
    with ClipGradCAM(model=detector, target_layers=[detector.feature_layer()]) as cam:
        heat = cam(input_tensor=clip, targets=[ClassifierOutputTarget(1)])
    detector.zero_grad(set_to_none=True)
    return np.nan_to_num(np.asarray(heat, dtype=np.float32)).clip(0, 1)


def overlay(crop_region: np.ndarray, heat: np.ndarray, strength: float = 0.45) -> np.ndarray:
    """Blend a jet-coloured ``heat [h, w]`` in [0, 1] over ``crop_region [h, w, 3]`` uint8."""
    from matplotlib import colormaps

    colours = colormaps["jet"](heat)[..., :3] * 255
    alpha = strength * heat[..., None]
    return (crop_region * (1 - alpha) + colours * alpha).round().clip(0, 255).astype(np.uint8)
