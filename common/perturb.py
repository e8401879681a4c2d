"""Perturbations of whole videos, as platforms apply them: re-encoding, resizing, blur, noise, colour changes.

One table of perturbation types, each at five levels (level 0 is the untouched video), shared by
``forgelab robustness`` (whole videos, :func:`perturb_video`) and by training (face clips,
:class:`common.augment.ClipAugment`'s ``perturb_prob``), so a detector is trained for robustness and measured
with the same code.

The default levels are DeeperForensics-1.0's (Jiang et al., CVPR 2020, its perturbation table):

========== ================================================ ==========================================
name       operation                                        levels 1-5 (DeeperForensics-1.0 where named)
========== ================================================ ==========================================
saturation chroma (Cb, Cr) deviation from grey times factor 0.4, 0.3, 0.2, 0.1, 0.0 (CS)
contrast   pixel values times factor                        0.85, 0.725, 0.6, 0.475, 0.35 (CC)
noise      Gaussian noise in YCbCr, variance (studio range) 0.001, 0.002, 0.005, 0.01, 0.05 (GNC)
blur       Gaussian blur, kernel k, sigma k / 6             7, 9, 13, 17, 21 (GB)
downscale  down by a factor, back up (bilinear)             2, 3, 4, 5, 6 (DeeperForensics' "JPEG" row)
jpeg       JPEG re-compression of every frame, quality      50, 40, 30, 20, 10 (ours: DF has no real JPEG)
h264       H.264 re-encoding (libx264, preset medium), crf  30, 32, 35, 38, 40 (VC)
h264_2gen  the same, twice (a platform re-encoding a copy)  30, 32, 35, 38, 40
========== ================================================ ==========================================

DeeperForensics' seventh type, random grey blocks, is occlusion rather than a platform's processing and is
left out. Its "JPEG compression" is in fact a down- and up-scaling, which is our ``downscale`` row; real JPEG
block artefacts are the ``jpeg`` row, with our own levels.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from common.errors import ConfigError

KINDS = ("saturation", "contrast", "noise", "blur", "downscale", "jpeg", "h264")

DEFAULT_SUITE: dict[str, dict[str, Any]] = {
    "saturation": {"kind": "saturation", "levels": [0.4, 0.3, 0.2, 0.1, 0.0]},
    "contrast": {"kind": "contrast", "levels": [0.85, 0.725, 0.6, 0.475, 0.35]},
    "noise": {"kind": "noise", "levels": [0.001, 0.002, 0.005, 0.01, 0.05]},
    "blur": {"kind": "blur", "levels": [7, 9, 13, 17, 21]},
    "downscale": {"kind": "downscale", "levels": [2, 3, 4, 5, 6]},
    "jpeg": {"kind": "jpeg", "levels": [50, 40, 30, 20, 10]},
    "h264": {"kind": "h264", "levels": [30, 32, 35, 38, 40]},
    "h264_2gen": {"kind": "h264", "levels": [30, 32, 35, 38, 40], "generations": 2},
}

# BT.601 full-range RGB <-> YCbCr (the matrix OpenCV's YCrCb conversion uses), on [0, 1] values.
_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_TO_RGB = np.linalg.inv(_TO_YCC).astype(np.float32)
_STUDIO = np.array([219.0, 224.0, 224.0], np.float32) / 255  # studio-range span of Y, Cb, Cr (DeeperForensics' noise)


@dataclass(frozen=True)
class Perturbation:
    """One perturbation type at its five levels.

    Attributes:
        name: its name in reports and cache folders.
        kind: one of :data:`KINDS`.
        levels: the parameter of levels 1, 2, ... (level 0 is the identity).
        generations: ``h264``: how many times the video is encoded in a row.
    """

    name: str
    kind: str
    levels: tuple[float, ...]
    generations: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"perturbation {self.name!r}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not self.levels:
            raise ConfigError(f"perturbation {self.name!r} has no levels")
        if self.generations < 1:
            raise ConfigError(f"perturbation {self.name!r}: generations must be >= 1")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"perturbation name {self.name!r} cannot name a folder")

    def param(self, level: int) -> float:
        """The parameter of ``level`` (1-based).

        Raises:
            ConfigError: no such level.
        """
        if not 1 <= level <= len(self.levels):
            raise ConfigError(f"perturbation {self.name!r} has levels 0-{len(self.levels)}, not {level}")
        return float(self.levels[level - 1])

    def apply(self, frames: np.ndarray, level: int, rng: np.random.Generator, fps: float = 25.0) -> np.ndarray:
        """Perturb a run of frames.

        Args:
            frames: uint8 ``[T, H, W, 3]`` RGB.
            level: 0 (identity: the input is returned unchanged) to ``len(levels)``.
            rng: the noise's random generator.
            fps: frame rate (``h264``: the encoder's rate control depends on it).

        Returns:
            uint8 ``[T, H, W, 3]``, the same shape.
        """
        if level == 0:
            return frames
        value = self.param(level)
        if self.kind == "h264":
            return h264_frames(frames, int(value), fps, self.generations)
        return perturb_frames(frames, self.kind, value, rng)


def load_suite(path: str | Path | None = None, only: Sequence[str] | None = None) -> list[Perturbation]:
    """The perturbation table: :data:`DEFAULT_SUITE`, or a YAML file mapping names to ``{kind, levels[,
    generations]}``; ``only`` keeps the named ones (in the table's order).

    Raises:
        ConfigError: an unreadable file, an unknown kind or name.
    """
    table = DEFAULT_SUITE
    if path is not None:
        import yaml

        try:
            table = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"perturbation table {path}: {exc}") from None
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise ConfigError(f"perturbation table {path}: expected a mapping of name -> {{kind, levels}}")
    suite = []
    for name, entry in table.items():
        unknown = set(entry) - {"kind", "levels", "generations"}
        if unknown:
            raise ConfigError(f"perturbation {name!r}: unknown keys {sorted(unknown)}")
        try:
            levels = tuple(float(v) for v in entry.get("levels", ()))
        except (TypeError, ValueError):
            raise ConfigError(f"perturbation {name!r}: levels must be numbers") from None
        suite.append(Perturbation(str(name), str(entry.get("kind", name)), levels, int(entry.get("generations", 1))))
    if only:
        missing = sorted(set(only) - {p.name for p in suite})
        if missing:
            raise ConfigError(f"no perturbation named {', '.join(missing)} (have {', '.join(p.name for p in suite)})")
        suite = [p for p in suite if p.name in only]
    return suite


def _ycc(frames: np.ndarray) -> np.ndarray:
    return (frames.astype(np.float32) / 255) @ _TO_YCC.T


def _rgb_u8(ycc: np.ndarray) -> np.ndarray:
    return np.clip(np.round((ycc @ _TO_RGB.T) * 255), 0, 255).astype(np.uint8)


def perturb_frames(frames: np.ndarray, kind: str, value: float, rng: np.random.Generator) -> np.ndarray:
    """One frame-wise perturbation (every kind but ``h264``) of uint8 ``[T, H, W, 3]`` RGB frames."""
    if kind == "saturation":  # DeeperForensics CS: Cb, Cr about their neutral value, times the factor
        ycc = _ycc(frames)
        ycc[..., 1:] *= value
        return _rgb_u8(ycc)
    if kind == "contrast":  # DeeperForensics CC: every value times the factor
        return np.clip(frames.astype(np.float32) * value, 0, 255).astype(np.uint8)
    if kind == "noise":  # DeeperForensics GNC: N(0, var) on Y, Cb, Cr in studio-range units
        ycc = _ycc(frames)
        ycc += rng.standard_normal(ycc.shape, dtype=np.float32) * np.float32(np.sqrt(value)) / _STUDIO
        return _rgb_u8(ycc)
    if kind == "jpeg":
        return jpeg_frames(frames, int(value))
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    h, w = video.shape[-2:]
    if kind == "blur":  # DeeperForensics GB: kernel k, sigma k / 6
        k = int(value) | 1
        video = TF.gaussian_blur(video, [k, k], [k / 6, k / 6])
    elif kind == "downscale":  # DeeperForensics' "JPEG" row: size // factor, then back (bilinear)
        small = F.interpolate(video, size=(max(1, h // int(value)), max(1, w // int(value))), mode="bilinear",
                              align_corners=False)  # fmt: skip
        video = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    else:
        raise ConfigError(f"unknown perturbation kind {kind!r}")
    return video.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def jpeg_frames(frames: np.ndarray, quality: int) -> np.ndarray:
    """Every frame JPEG-compressed at ``quality`` (libjpeg through Pillow, 4:2:0) and decoded."""
    from PIL import Image

    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=int(quality))
        out[i] = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out


def even_padded(frames: np.ndarray) -> np.ndarray:
    """Frames with an odd side padded by one edge row/column (H.264 4:2:0 needs even sides)."""
    h, w = frames.shape[1:3]
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def h264_frames(frames: np.ndarray, crf: int, fps: float = 25.0, generations: int = 1) -> np.ndarray:
    """Frames through real H.264 encoding (libx264, yuv420p, preset medium) ``generations`` times, decoded.

    Used for short clips (training augmentation); whole videos go through :func:`perturb_video`, which
    streams.
    """
    from common.encode import write_video
    from common.video import VideoReader

    h, w = frames.shape[1:3]
    with tempfile.TemporaryDirectory(prefix="forgelab-h264-") as tmp:
        current = frames
        for g in range(generations):
            path = Path(tmp) / f"g{g}.mp4"
            write_video(path, even_padded(current), fps, crf=crf, preset="medium")
            with VideoReader(path) as reader:
                current = reader.read(list(range(len(frames))))[:, :h, :w]
    return np.ascontiguousarray(current)


def perturb_video(src: str | Path, dst: str | Path, perturbation: Perturbation, level: int, seed: int = 0) -> Path:
    """Write ``src`` perturbed at ``level`` to ``dst`` (an ``.mp4`` that appears only when complete).

    Frame-wise perturbations are stored losslessly (x264 RGB, crf 0), so the file holds exactly the perturbed
    frames; ``h264`` stores the re-encoded stream itself (a frame with an odd side padded by one edge pixel,
    which H.264 4:2:0 needs). Frames are streamed in chunks, so memory does not grow with the video's length.

    Args:
        src: the video.
        dst: the output file.
        perturbation: the type.
        level: 1 to ``len(perturbation.levels)``.
        seed: the noise's seed.

    Returns:
        ``dst``.
    """
    from common.encode import write_video
    from common.video import probe, video_chunks

    src, dst = Path(src), Path(dst)
    info = probe(src)
    value = perturbation.param(level)
    if perturbation.kind != "h264":
        rng = np.random.default_rng(seed)
        frames = (perturb_frames(chunk, perturbation.kind, value, rng) for chunk in video_chunks(src))
        return write_video(dst, (f for chunk in frames for f in chunk), info.fps, lossless=True)
    current = src
    with tempfile.TemporaryDirectory(prefix="forgelab-h264-", dir=dst.parent) as tmp:
        for g in range(perturbation.generations):
            target = dst if g == perturbation.generations - 1 else Path(tmp) / f"g{g}.mp4"
            frames = (f for chunk in video_chunks(current) for f in even_padded(chunk))
            write_video(target, frames, info.fps, crf=int(value), preset="medium")  # atomic: appears when complete
            current = target
    return dst
