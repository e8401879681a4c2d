"""Self-blended pseudo-fakes (after Shiohara and Yamasaki, CVPR 2022, "Self-Blended Images", SBI).

A real face clip becomes a fake clip by blending it with a transformed copy of itself through a soft
face mask: ``fake = base + mask * (other - base)``. As in SBI:

* the mask is the hull of the face (built from the 5 MTCNN landmarks, extended to forehead and chin),
  randomly scaled, **deformed by a smooth random warp** (SBI's elastic mask deformation) and blurred;
* the **blend ratio** (the mask's maximum opacity) is drawn from a set that includes low values
  (0.25, 0.5, 0.75, 1, 1, 1);
* **which side is transformed** is random: either the face inside the mask comes from the transformed
  copy (``base`` = the clip, ``other`` = its copy) or the surroundings do (``base`` = the copy,
  ``other`` = the clip);
* the transformed copy differs in **colour** (per-channel shift, hue, saturation, brightness,
  contrast), in **frequency content** (sharpened, blurred or down- and up-scaled) and slightly in
  **geometry** (shift and zoom), so blending boundaries and statistics mismatches appear exactly where
  real face swaps have them.

One set of parameters is drawn per clip and applied to every frame. The fake differs from ``base``
only where the mask is non-zero (bit-identical elsewhere); with ``paired`` training every real clip is
shown next to its own pseudo-fake, both as ``base`` (SBI trains on such pairs: the only difference
inside a batch is the blend, which is what makes the artefact learnable quickly from scratch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from skimage.draw import polygon as draw_polygon

from common.masks import feather


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


def deform(mask: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """Warp hard masks ``[T, 1, S, S]`` by a smooth displacement ``field [2, g, g]`` (fractions of the side).

    The coarse field is upsampled bicubically to the mask grid (a random elastic warp); the result is
    re-binarised so the later blur alone decides the soft edge.
    """
    t, _, s, _ = mask.shape
    flow = F.interpolate(field[None], size=(s, s), mode="bicubic", align_corners=True)[0]  # [2, S, S]
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
    grid = torch.stack([xs + 2 * flow[0], ys + 2 * flow[1]], dim=-1)[None].expand(t, s, s, 2)
    warped = F.grid_sample(mask, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return (warped > 0.5).float()


@dataclass
class SelfBlend:
    """Random self-blending of face clips.

    Args:
        fake_prob: unpaired training: probability that a real clip is turned into a pseudo-fake
            (evaluation turns every other real clip, deterministically, so validation is balanced).
        paired: training: every real clip yields two samples, its ``base`` (label 0) and its pseudo-fake
            (label 1), with the same augmentation (SBI's batches); ``fake_prob`` is then unused.
        hull_scale: range of the mask hull's scale about the face centre.
        deform: range of the mask's random warp amplitude (fraction of the crop side).
        blur_sigma: range of the mask blur (fraction of the crop side).
        blend_ratios: the mask's maximum opacity is drawn from these (repeats weight a value).
        target_prob: probability that the surroundings, not the face, are the transformed side.
        shift: range of the copy's translation (fraction of the crop side).
        zoom: range of the copy's scale change.
        rgb_shift: range of the copy's per-channel additive shift.
        hue: range of the copy's hue shift (fraction of the colour circle).
        saturation: range of the copy's saturation factor change.
        brightness: range of the copy's brightness factor change.
        contrast: range of the copy's contrast factor change.
        frequency: probabilities of (sharpen, blur, down-up-scale) of the copy; otherwise none.
    """

    fake_prob: float = 0.5
    paired: bool = False
    hull_scale: tuple[float, float] = (0.9, 1.2)
    deform: tuple[float, float] = (0.0, 0.04)
    blur_sigma: tuple[float, float] = (0.01, 0.05)
    blend_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
    target_prob: float = 0.5
    shift: tuple[float, float] = (-0.03, 0.03)
    zoom: tuple[float, float] = (0.95, 1.05)
    rgb_shift: tuple[float, float] = (-0.08, 0.08)
    hue: tuple[float, float] = (-0.03, 0.03)
    saturation: tuple[float, float] = (-0.2, 0.2)
    brightness: tuple[float, float] = (-0.1, 0.1)
    contrast: tuple[float, float] = (-0.1, 0.1)
    frequency: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Parameters of one pseudo-fake clip."""
        u = rng.uniform
        kind = rng.choice(4, p=[*self.frequency, 1 - sum(self.frequency)])
        amp = u(*self.deform)
        return {
            "hull_scale": u(*self.hull_scale), "blur": u(*self.blur_sigma),
            "ratio": float(rng.choice(self.blend_ratios)), "target": bool(rng.random() < self.target_prob),
            "field": (rng.uniform(-1, 1, (2, 4, 4)) * amp).astype(np.float32),
            "dx": u(*self.shift), "dy": u(*self.shift), "zoom": u(*self.zoom),
            "rgb": [u(*self.rgb_shift) for _ in range(3)], "hue": u(*self.hue),
            "saturation": 1 + u(*self.saturation), "brightness": 1 + u(*self.brightness),
            "contrast": 1 + u(*self.contrast),
            "frequency": ("sharpen", "blur", "downscale", "none")[int(kind)],
            "sharpen": u(0.3, 1.5), "blur_px": u(0.5, 1.2), "downscale": u(0.35, 0.75),
        }  # fmt: skip

    @staticmethod
    def transformed_copy(video: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
        """The transformed copy of ``video [T, 3, S, S]`` (colour, frequency content, zoom and shift)."""
        s = video.shape[-1]
        out = (video + torch.tensor(p["rgb"], dtype=video.dtype).view(1, 3, 1, 1)).clamp(0, 1)
        out = TF.adjust_hue(out, p["hue"])
        out = TF.adjust_saturation(out, p["saturation"])
        out = TF.adjust_brightness(out, p["brightness"])
        out = TF.adjust_contrast(out, p["contrast"])
        if p["frequency"] == "sharpen":
            blurred = TF.gaussian_blur(out, [3, 3], [1.0, 1.0])
            out = out + p["sharpen"] * (out - blurred)
        elif p["frequency"] == "blur":
            k = int(2 * round(3 * p["blur_px"]) + 1)
            out = TF.gaussian_blur(out, [k, k], [p["blur_px"], p["blur_px"]])
        elif p["frequency"] == "downscale":
            small = max(8, round(s * p["downscale"]))
            out = TF.resize(TF.resize(out, [small, small], antialias=True), [s, s], antialias=True)
        out = out.clamp(0, 1)
        theta = torch.tensor([[1 / p["zoom"], 0, p["dx"] * 2], [0, 1 / p["zoom"], p["dy"] * 2]], dtype=video.dtype)
        grid = F.affine_grid(theta.expand(len(out), 2, 3), list(out.shape), align_corners=False)
        return F.grid_sample(out, grid, padding_mode="border", align_corners=False)

    def masks(self, landmarks: np.ndarray, size: int, p: dict[str, Any]) -> torch.Tensor:
        """Soft blend masks ``[T, 1, S, S]`` in [0, ratio] from landmarks ``[T, 5, 2]`` (crop pixels)."""
        hard = np.stack([convex_polygon_mask(hull_points(lm, p["hull_scale"]), size) for lm in landmarks])
        hard_t = torch.from_numpy(hard)[:, None]
        if float(np.abs(p["field"]).max()) > 0:
            hard_t = deform(hard_t, torch.from_numpy(p["field"]))
        return feather(hard_t, p["blur"] * size) * p["ratio"]

    def __call__(
        self, video: torch.Tensor, landmarks: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Blend a clip with its transformed copy.

        Args:
            video: float ``[T, 3, S, S]`` in [0, 1].
            landmarks: ``[T, 5, 2]`` (x, y) in the clip's pixel coordinates.
            rng: random generator.

        Returns:
            ``(pseudo-fake [T, 3, S, S], mask [T, 1, S, S], base [T, 3, S, S])``: the fake equals ``base``
            (the real clip, or its transformed copy when the surroundings are the transformed side)
            wherever ``mask == 0``.
        """
        p = self.sample(rng)
        mask = self.masks(landmarks, video.shape[-1], p)
        copy = self.transformed_copy(video, p)
        base, other = (copy, video) if p["target"] else (video, copy)
        return base + mask * (other - base), mask, base
