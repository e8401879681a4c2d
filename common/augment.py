"""Clip-consistent augmentation: one set of random parameters per clip, applied to every frame.

Detectors see temporal artefacts, so a flip or a colour shift that changed from frame to frame would
itself look like a manipulation; the generator's pair (source, driving) must stay one video. Every
transform here draws its parameters once per call and applies them to the whole ``[T, 3, H, W]`` clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF


@dataclass
class ClipAugment:
    """Random clip-level augmentation.

    Args:
        hflip: probability of a horizontal flip.
        time_flip: probability of reversing the frame order (the generator's pair swap).
        brightness: brightness factor drawn from ``[1 - b, 1 + b]``.
        contrast: contrast factor drawn from ``[1 - c, 1 + c]``.
        saturation: saturation factor drawn from ``[1 - s, 1 + s]``.
        hue: hue shift drawn from ``[-h, h]`` (at most 0.5).
        jpeg_prob: probability of JPEG re-compression.
        jpeg_quality: quality range for re-compression.
        blur_prob: probability of a Gaussian blur.
        blur_sigma: blur sigma range in pixels.
        downscale_prob: probability of down- then up-scaling.
        downscale_range: scale factor range for that.
        exclusive_flips: a time flip excludes the horizontal flip (the motion co-segmentation original:
            time flip with ``time_flip``, otherwise a horizontal flip with ``hflip``).
        affine_prob: probability of a random similarity transform (zoom, shift, rotation; border pixels
            uncovered pixels black), so a detector trained on few videos cannot memorise where each face sits.
        zoom: scale range of that transform.
        shift: translation range (fraction of the side) of that transform.
        rotate: rotation range in degrees of that transform.
        perturb_prob: probability of one perturbation of the robustness table (:mod:`common.perturb`: H.264
            re-encoding, down-scaling, JPEG, blur, noise, contrast, saturation) at a random level, the same code
            ``forgelab robustness`` measures with; applied last, to the face clip.
        perturb_suite: the table (a YAML file; ``None``: DeeperForensics-1.0's levels).
        perturb_only: the perturbation names to draw from (empty: all).
        perturb_max_level: the highest level drawn (levels 1..this, uniformly).
    """

    hflip: float = 0.5
    time_flip: float = 0.0
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.0
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (40, 95)
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    downscale_prob: float = 0.0
    downscale_range: tuple[float, float] = (0.4, 0.9)
    exclusive_flips: bool = False
    affine_prob: float = 0.0
    zoom: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.05
    rotate: float = 10.0
    perturb_prob: float = 0.0
    perturb_suite: str | None = None
    perturb_only: tuple[str, ...] = ()
    perturb_max_level: int = 5

    @cached_property
    def suite(self) -> dict[str, Any]:
        """The perturbations to draw from, by name (read once)."""
        from common.perturb import load_suite

        return {p.name: p for p in load_suite(self.perturb_suite, list(self.perturb_only) or None)}

    def _perturbation(self, rng: np.random.Generator) -> tuple[str, int, int, str | None] | None:
        if self.perturb_prob <= 0 or rng.random() >= self.perturb_prob:
            return None
        name = list(self.suite)[int(rng.integers(len(self.suite)))]
        top = min(self.perturb_max_level, len(self.suite[name].levels))
        return name, int(rng.integers(1, top + 1)), int(rng.integers(2**31)), self.perturb_suite

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw one set of parameters."""

        def factor(r: float) -> float:
            return float(rng.uniform(1 - r, 1 + r)) if r > 0 else 1.0

        time_flip = bool(rng.random() < self.time_flip)
        hflip = bool(rng.random() < self.hflip) and not (self.exclusive_flips and time_flip)
        return {
            "hflip": hflip,
            "time_flip": time_flip,
            "brightness": factor(self.brightness),
            "contrast": factor(self.contrast),
            "saturation": factor(self.saturation),
            "hue": float(rng.uniform(-self.hue, self.hue)) if self.hue > 0 else 0.0,
            "order": [int(i) for i in rng.permutation(4)],
            "jpeg": int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
            if rng.random() < self.jpeg_prob
            else None,
            "blur": float(rng.uniform(*self.blur_sigma)) if rng.random() < self.blur_prob else None,
            "downscale": float(rng.uniform(*self.downscale_range)) if rng.random() < self.downscale_prob else None,
            "affine": (float(rng.uniform(*self.zoom)), float(rng.uniform(-self.shift, self.shift)),
                       float(rng.uniform(-self.shift, self.shift)), float(rng.uniform(-self.rotate, self.rotate)))
            if rng.random() < self.affine_prob else None,
            "perturb": self._perturbation(rng),
        }  # fmt: skip

    @staticmethod
    def apply(video: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        """Apply ``params`` to a clip.

        Args:
            video: float ``[T, 3, H, W]`` in [0, 1].
            params: from :meth:`sample`.

        Returns:
            float ``[T, 3, H, W]`` in [0, 1] (frame order reversed when ``time_flip``).
        """
        if params["hflip"]:
            video = video.flip(-1)
        if params.get("affine") is not None:
            scale, dx, dy, angle = params["affine"]
            h, w = video.shape[-2:]
            video = TF.affine(video, angle=angle, translate=[round(dx * w), round(dy * h)], scale=scale, shear=[0.0],
                              interpolation=TF.InterpolationMode.BILINEAR)  # fmt: skip
        if params["time_flip"]:
            video = video.flip(0)
        jitters = [
            lambda v: TF.adjust_brightness(v, params["brightness"]) if params["brightness"] != 1 else v,
            lambda v: TF.adjust_contrast(v, params["contrast"]) if params["contrast"] != 1 else v,
            lambda v: TF.adjust_saturation(v, params["saturation"]) if params["saturation"] != 1 else v,
            lambda v: TF.adjust_hue(v, params["hue"]) if params["hue"] != 0 else v,
        ]
        for i in params["order"]:
            video = jitters[i](video)
        h, w = video.shape[-2:]
        if params["downscale"] is not None:
            s = params["downscale"]
            small = TF.resize(video, [max(8, round(h * s)), max(8, round(w * s))], antialias=True)
            video = TF.resize(small, [h, w], antialias=True)
        if params["blur"] is not None:
            sigma = params["blur"]
            k = max(3, int(2 * round(3 * sigma) + 1))
            video = TF.gaussian_blur(video, [k, k], [sigma, sigma])
        if params["jpeg"] is not None:
            u8 = (video.clamp(0, 1) * 255).round().to(torch.uint8)
            video = TF.jpeg(u8, params["jpeg"]).float() / 255
        if params.get("perturb") is not None:
            from common.perturb import load_suite

            name, level, seed, table = params["perturb"]
            u8 = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            out = load_suite(table, [name])[0].apply(u8, level, np.random.default_rng(seed))
            video = torch.from_numpy(np.ascontiguousarray(out)).permute(0, 3, 1, 2).float() / 255
        return video.clamp(0, 1)

    def __call__(self, video: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        """Sample parameters and apply them; returns the clip and the parameters."""
        params = self.sample(rng)
        return self.apply(video, params), params
