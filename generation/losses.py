"""Losses of motion co-segmentation: VGG19 perceptual pyramid and equivariance (paper Sec. 3.3).

Each loss is a small module returning a scalar; a weight of 0 skips the term.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from common.errors import CheckpointError
from common.weights import fit_state_dict, load_pretrained_state
from generation.models.blocks import AntiAliasInterpolation2d
from generation.models.segmentation import SegmentationModule
from generation.transform import Transform

VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))  # relu1_1 .. relu5_1


class Vgg19Features(nn.Module):
    """Frozen VGG19 returning relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of ImageNet-normalised input.

    Args:
        weights: ``"imagenet"`` loads torchvision's ``vgg19-dcbb9e9d.pth`` from a local file (see
            ``pretrained/manifest.yaml``); ``"random"`` keeps a seeded random initialisation (tests, and
            the CPU sample experiment where no ImageNet weights can be downloaded).
    """

    def __init__(self, weights: str = "imagenet") -> None:
        super().__init__()
        from torchvision.models import vgg19

        if weights == "random":
            with torch.random.fork_rng():
                torch.manual_seed(0)
                features = vgg19(weights=None).features
        else:
            features = vgg19(weights=None).features
        if weights == "imagenet":
            fit_state_dict(features, load_pretrained_state("vgg19_imagenet", prefix="features."), "vgg19_imagenet",
                           "torchvision's VGG19 features")  # fmt: skip
        elif weights != "random":
            raise CheckpointError(str(weights), "VGG weights must be 'imagenet' or 'random'")
        self.slices = nn.ModuleList(nn.Sequential(*[features[i] for i in range(a, b)]) for a, b in VGG_SLICES)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Vgg19Features:  # always frozen, always eval
        return super().train(False)

    def forward(self, x: torch.Tensor, depth: int = 5) -> list[torch.Tensor]:
        """Features of the first ``depth`` slices (relu1_1 .. relu{depth}_1) of ``x [B, 3, H, W]`` in [0, 1]."""
        out = (x - self.mean) / self.std
        feats = []
        for s in self.slices[:depth]:
            out = s(out)
            feats.append(out)
        return feats


class ImagePyramid(nn.Module):
    """Anti-aliased image pyramid at the given scales: ``[B, C, H, W]`` -> list per scale."""

    def __init__(self, scales: Sequence[float], channels: int = 3) -> None:
        super().__init__()
        self.scales = list(scales)
        self.levels = nn.ModuleList(AntiAliasInterpolation2d(channels, s) for s in self.scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [level(x) for level in self.levels]


class PerceptualPyramidLoss(nn.Module):
    """sum_scales sum_layers w_i |VGG_i(pred_s) - VGG_i(real_s)|_1 (means), VGG frozen.

    Args:
        scales: pyramid scales (1, 0.5, 0.25, 0.125 in the paper).
        weights: one weight per VGG layer (10 each in the paper); all 0 disables the loss.
        vgg: ``"imagenet"`` or ``"random"`` (see :class:`Vgg19Features`).
    """

    def __init__(self, scales: Sequence[float] = (1, 0.5, 0.25, 0.125), weights: Sequence[float] = (10,) * 5,
                 vgg: str = "imagenet") -> None:  # fmt: skip
        super().__init__()
        self.weights = list(weights)
        self.enabled = any(w != 0 for w in self.weights)
        self.depth = max((i + 1 for i, w in enumerate(self.weights) if w != 0), default=0)
        self.pyramid = ImagePyramid(scales)
        self.vgg = Vgg19Features(vgg) if self.enabled else None

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return prediction.new_zeros(())
        total = prediction.new_zeros(())
        for p, t in zip(self.pyramid(prediction), self.pyramid(target)):
            for w, fp, ft in zip(self.weights, self.vgg(p, self.depth), self.vgg(t, self.depth)):
                if w:
                    total = total + w * (fp - ft.detach()).abs().mean()
        return total


def equivariance_losses(
    segmentation_module: SegmentationModule,
    target: torch.Tensor,
    seg_target: dict[str, torch.Tensor],
    transform: Transform,
    weight: float = 10.0,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | dict[str, torch.Tensor]]]:
    """Equivariance of shifts and affines under a known warp (paper Eq. 6-7).

    Returns:
        ``({"equivariance_shift", "equivariance_affine"}, intermediates)`` where the losses are
        ``weight * mean|p_T - W(p_W)|`` and ``weight * mean|I - A_T^-1 J_W(p_W) A_W|`` with W the warp,
        p_W / A_W the shifts / affines predicted on the warped frame.
    """
    transformed_frame = transform.transform_frame(target)
    seg_transformed = segmentation_module(transformed_frame)
    warped_shift = transform.warp_coordinates(seg_transformed["shift"])
    losses = {"equivariance_shift": weight * (seg_target["shift"] - warped_shift).abs().mean()}
    extras: dict[str, torch.Tensor | dict[str, torch.Tensor]] = {
        "transformed_frame": transformed_frame,
        "transformed_seg": seg_transformed,
        "warped_shift": warped_shift,
    }
    if "affine" in seg_target:
        shift = seg_transformed["shift"]
        if not shift.requires_grad:  # evaluation without gradients: differentiate the warp alone
            shift = shift.detach().requires_grad_(True)
        with torch.enable_grad():
            jac = transform.jacobian(shift)
        product = torch.matmul(torch.inverse(seg_target["affine"]), torch.matmul(jac, seg_transformed["affine"]))
        eye = torch.eye(2, dtype=product.dtype, device=product.device).view(1, 1, 2, 2)
        losses["equivariance_affine"] = weight * (eye - product).abs().mean()
        extras["jacobian"] = jac
    return losses, extras
