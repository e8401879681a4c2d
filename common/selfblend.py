"""Self-blended pseudo-fakes (after Shiohara and Yamasaki, CVPR 2022, "Self-Blended Images").

A real face clip becomes a fake clip by blending each face with a slightly transformed copy of itself
(colour shift, sharpness change, small scale and translation) through a soft mask built from the face's
landmarks (a convex hull of the 5 MTCNN points extended to forehead and chin, scaled and blurred). The
identity does not change, but blending boundaries and statistics mismatches appear exactly where real
face swaps have them. One set of parameters is drawn per clip and applied to every frame. Pixels where
the mask is 0 are left exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.draw import polygon as draw_polygon


def hull_points(landmarks: np.ndarray, scale: float) -> np.ndarray:
    """Face outline points ``[8, 2]`` from 5 landmarks (eyes, nose, mouth corners), scaled about their centre."""
    eyes = (landmarks[0] + landmarks[1]) / 2
    mouth = (landmarks[3] + landmarks[4]) / 2
    down = mouth - eyes
    side = landmarks[0] - landmarks[1]
    pts = np.stack([
        landmarks[0] - 0.3 * down, landmarks[1] - 0.3 * down, eyes - 0.9 * down,  # brows and forehead
        landmarks[4] + 0.4 * down, mouth + 0.9 * down, landmarks[3] + 0.4 * down,  # jaw and chin
        landmarks[0] + 0.2 * side, landmarks[1] - 0.2 * side,  # temples
    ])  # fmt: skip
    centre = pts.mean(axis=0)
    return centre + scale * (pts - centre)


def convex_polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    """Filled convex hull of ``points [N, 2]`` (x, y) as a float32 ``[size, size]`` mask."""
    centre = points.mean(axis=0)
    order = np.argsort(np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0]))
    p = points[order]
    mask = np.zeros((size, size), np.float32)
    rr, cc = draw_polygon(p[:, 1], p[:, 0], shape=(size, size))
    mask[rr, cc] = 1.0
    return mask


def gaussian_blur(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur ``[T, 1, S, S]`` masks with a Gaussian of ``sigma`` pixels; values below 1e-3 become 0."""
    if sigma <= 0:
        return mask
    k = int(2 * round(3 * sigma) + 1)
    x = torch.arange(k, dtype=torch.float32) - k // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    out = F.conv2d(F.pad(mask, (k // 2,) * 4, mode="replicate"), g.view(1, 1, 1, k))
    out = F.conv2d(out, g.view(1, 1, k, 1))
    return torch.where(out < 1e-3, torch.zeros_like(out), out)


@dataclass
class SelfBlend:
    """Random self-blending of face clips.

    Args:
        fake_prob: probability that a real training clip is turned into a pseudo-fake (evaluation turns
            every other real clip deterministically, so validation is balanced).
        hull_scale: range of the mask hull's scale about the face centre.
        blur_sigma: range of the mask blur (fraction of the crop size).
        blend_ratio: range of the maximum mask opacity.
        shift: range of the copy's translation (fraction of the crop size).
        zoom: range of the copy's scale change.
        colour: range of per-channel gain changes of the copy.
        sharpness: range of the copy's sharpen (+) / blur (-) amount.
    """

    fake_prob: float = 0.5
    hull_scale: tuple[float, float] = (1.0, 1.25)
    blur_sigma: tuple[float, float] = (0.01, 0.04)
    blend_ratio: tuple[float, float] = (0.6, 1.0)
    shift: tuple[float, float] = (-0.03, 0.03)
    zoom: tuple[float, float] = (0.95, 1.05)
    colour: tuple[float, float] = (-0.1, 0.1)
    sharpness: tuple[float, float] = (-1.0, 1.0)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Parameters of one pseudo-fake clip."""
        u = rng.uniform
        return {
            "hull_scale": u(*self.hull_scale), "blur": u(*self.blur_sigma), "ratio": u(*self.blend_ratio),
            "dx": u(*self.shift), "dy": u(*self.shift), "zoom": u(*self.zoom),
            "gain": [u(*self.colour) for _ in range(3)], "bias": u(*self.colour) / 2, "sharp": u(*self.sharpness),
        }  # fmt: skip

    @staticmethod
    def source_copy(video: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
        """The transformed copy of ``video [T, 3, S, S]`` (colour, sharpness, zoom and shift)."""
        gain = torch.tensor([1 + g for g in p["gain"]], dtype=video.dtype).view(1, 3, 1, 1)
        out = (video * gain + p["bias"]).clamp(0, 1)
        blurred = F.avg_pool2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        out = (out + p["sharp"] * (out - blurred)).clamp(0, 1)
        theta = torch.tensor([[1 / p["zoom"], 0, p["dx"] * 2], [0, 1 / p["zoom"], p["dy"] * 2]], dtype=video.dtype)
        grid = F.affine_grid(theta.expand(len(out), 2, 3), list(out.shape), align_corners=False)
        return F.grid_sample(out, grid, padding_mode="border", align_corners=False)

    def masks(self, landmarks: np.ndarray, size: int, p: dict[str, Any]) -> torch.Tensor:
        """Soft blend masks ``[T, 1, S, S]`` in [0, ratio] from landmarks ``[T, 5, 2]`` (crop pixels)."""
        hard = np.stack([convex_polygon_mask(hull_points(lm, p["hull_scale"]), size) for lm in landmarks])
        return gaussian_blur(torch.from_numpy(hard)[:, None], p["blur"] * size) * p["ratio"]

    def __call__(
        self, video: torch.Tensor, landmarks: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Blend a clip with its transformed copy.

        Args:
            video: float ``[T, 3, S, S]`` in [0, 1].
            landmarks: ``[T, 5, 2]`` (x, y) in the clip's pixel coordinates.
            rng: random generator.

        Returns:
            ``(pseudo-fake clip [T, 3, S, S], mask [T, 1, S, S])``; the clip equals ``video`` where mask == 0.
        """
        p = self.sample(rng)
        mask = self.masks(landmarks, video.shape[-1], p)
        src = self.source_copy(video, p)
        return video + mask * (src - video), mask
