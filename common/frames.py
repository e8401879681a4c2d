"""Where a dataset's frames come from: a face-crop cache, or the videos decoded on demand."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from common import cache as cache_mod
from common.datasets import VideoRecord
from common.errors import DatasetError
from common.video import VideoReader


class FrameSource:
    """Frames of a record: ``numbers`` lists what is available, ``read`` returns some of it."""

    def numbers(self, record: VideoRecord) -> np.ndarray:
        """Source frame numbers of the available frames (position i -> frame number), int64 ``[N]``."""
        raise NotImplementedError

    def length(self, record: VideoRecord) -> int:
        """Number of frames available for the record."""
        return len(self.numbers(record))

    def read(self, record: VideoRecord, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Frames at ``positions`` (0-based among the available ones).

        Returns:
            ``(uint8 [T, H, W, 3] RGB, int64 [T] source frame numbers, float32 [T, 5, 2] face landmarks in
            the returned frames' pixel coordinates, or None when unknown)``.
        """
        raise NotImplementedError


class CacheSource(FrameSource):
    """Face crops from a cache folder (memory-mapped, opened lazily in each worker)."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self._open: dict[str, cache_mod.CacheEntry] = {}
        self._failures: dict[str, str] | None = None

    def has(self, record: VideoRecord) -> bool:
        return cache_mod.is_done(self.cache, record.video_id)

    def why_missing(self, record: VideoRecord) -> str:
        """Why a record has no entry: the reason its preprocessing failed, when ``failures*.csv`` recorded one."""
        if self._failures is None:
            self._failures = {}
            for path in sorted(self.cache.glob("failures*.csv")):
                with path.open(newline="") as fh:
                    for row in csv.DictReader(fh):
                        self._failures[row.get("video_id", "")] = row.get("reason", "")
        reason = self._failures.get(record.video_id)
        return f"preprocessing failed: {reason}" if reason else "no entry in the face cache"

    def _entry(self, record: VideoRecord) -> cache_mod.CacheEntry:
        entry = self._open.get(record.video_id)
        if entry is None:
            if not self.has(record):
                raise DatasetError(record.path, self.why_missing(record))
            entry = self._open[record.video_id] = cache_mod.read_entry(self.cache, record.video_id)
        return entry

    def _rows(self, record: VideoRecord) -> np.ndarray:
        """Rows of the entry's crops inside the record's frame range."""
        idx = self._entry(record).frame_indices
        if record.frames is None:
            return np.arange(len(idx))
        return np.flatnonzero((idx >= record.frames[0]) & (idx < record.frames[1]))

    def numbers(self, record: VideoRecord) -> np.ndarray:
        return self._entry(record).frame_indices[self._rows(record)]

    def read(self, record: VideoRecord, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        entry = self._entry(record)
        rows = self._rows(record)[positions]
        return np.asarray(entry.crops[rows]), entry.frame_indices[rows], entry.crop_landmarks[rows]

    def __getstate__(self) -> dict[str, Any]:  # memmaps are reopened in each worker
        return {"cache": self.cache, "_open": {}, "_failures": None}


class DecodeSource(FrameSource):
    """Frames decoded from the video on demand; optionally face-cropped with a per-clip face track.

    Args:
        faces_on_the_fly: detect, track and crop the face of each clip.
        crop_size: side of the face crops.
        margin: crop side / face box side.
        square: square crops (else the face box itself, stretched to ``crop_size``).
        resample: interpolation of the crops (``bilinear``, ``bicubic``, ``nearest``).
        fixed_crop: cut every frame of one read at the same square region, the smallest covering the face's
            region in all of them (the face moves inside it, as in the VoxCeleb "video-preprocessing" crops
            motion co-segmentation learns from), instead of following the face frame by frame.
    """

    def __init__(self, faces_on_the_fly: bool = False, crop_size: int = 224, margin: float = 1.3,
                 square: bool = True, resample: str = "bilinear", fixed_crop: bool = False) -> None:  # fmt: skip
        self.faces_on_the_fly = faces_on_the_fly
        self.fixed_crop = fixed_crop
        self.crop_size = crop_size
        self.margin = margin
        self.square = square
        self.resample = resample
        self._lengths: dict[str, int] = {}
        self._extractor = None

    def numbers(self, record: VideoRecord) -> np.ndarray:
        n = self._lengths.get(record.video_id)
        if n is None:
            with VideoReader(record.path) as r:
                n = r.info.num_frames
            if record.frames is not None:
                n = max(0, min(record.frames[1], n) - record.frames[0])
            self._lengths[record.video_id] = n
        return np.arange(n, dtype=np.int64) + (record.frames[0] if record.frames is not None else 0)

    def read(self, record: VideoRecord, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        numbers = self.numbers(record)[positions]
        with VideoReader(record.path) as reader:
            frames = reader.read(numbers.tolist())
        if not self.faces_on_the_fly:
            return frames, numbers, None
        from common.faces import FaceExtractor, crop_square

        if self._extractor is None:
            self._extractor = FaceExtractor(crop_size=self.crop_size, margin=self.margin, square=self.square,
                                            resample=self.resample, device="cpu")  # fmt: skip
        dets = self._extractor.detect(frames)
        track = self._extractor.build_track(numbers, dets, (frames.shape[2], frames.shape[1]), record.path)
        if self.fixed_crop:
            track = replace(track, crop_boxes=np.repeat(covering_square(track.crop_boxes)[None], len(frames), 0))
        crops = np.stack([crop_square(f, b, self.crop_size, self.resample) for f, b in zip(frames, track.crop_boxes)])
        return crops, numbers, track.crop_landmarks(self.crop_size)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_extractor"] = None
        return state


def covering_square(regions: np.ndarray) -> np.ndarray:
    """The smallest square ``(x0, y0, x1, y1)`` (int64) centred on the union of ``regions [N, 4]`` that covers it."""
    x0, y0 = regions[:, 0].min(), regions[:, 1].min()
    x1, y1 = regions[:, 2].max(), regions[:, 3].max()
    side = int(max(x1 - x0, y1 - y0))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    return np.array([left, top, left + side, top + side], np.int64)


def to_tensor_clip(frames: np.ndarray, size: int | None) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float ``[T, 3, size, size]`` in [0, 1] (antialiased resize)."""
    frames = np.ascontiguousarray(frames)
    if not frames.flags.writeable:  # e.g. an array viewing a PIL image: torch wants writable memory
        frames = frames.copy()
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255)
    if size is not None and (video.shape[-1] != size or video.shape[-2] != size):
        video = F.interpolate(video, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return video.clamp_(0, 1)
