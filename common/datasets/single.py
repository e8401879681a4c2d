"""One video split in time: the first part for training, the rest for validation (sample experiments)."""

from __future__ import annotations

from pathlib import Path

from common.datasets.records import DatasetIndex, VideoRecord
from common.errors import DatasetError
from common.video import probe


class SingleVideoIndex(DatasetIndex):
    """A single real video cut into a training range and a later, disjoint validation range.

    Args:
        path: the video file or frame folder.
        val_fraction: share of frames (at the end) held out for validation.
        gap: frames skipped between the two ranges so no frame pair straddles them.
        label: label of the video (0 = real).
    """

    def __init__(self, path: str, val_fraction: float = 0.25, gap: int = 4, label: int = 0) -> None:
        self.path = Path(path)
        self.root = self.path
        self.val_fraction = val_fraction
        self.gap = gap
        self.label = label

    def records(self) -> list[VideoRecord]:
        n = probe(self.path).num_frames
        n_val = int(round(n * self.val_fraction))
        cut = n - n_val
        if cut - self.gap < 2 or n_val < 2:
            raise DatasetError(self.path, f"{n} frames are too few for a train/val split in time")
        name = self.path.stem
        return [
            VideoRecord(f"{name}@train", str(self.path), self.label, "train", name, frames=(0, cut - self.gap)),
            VideoRecord(f"{name}@val", str(self.path), self.label, "val", name, frames=(cut, n)),
        ]
