"""The VoxCeleb / TaiChi "video-preprocessing" layout used to train motion models."""

from __future__ import annotations

from pathlib import Path

from common.datasets.generic import find_videos
from common.datasets.records import DatasetIndex, VideoRecord, check_splits, group_split, require_dir
from common.errors import DatasetError


def person_id(name: str) -> str:
    """Person id of a video named ``<id>#<ytid>#<start>#<end>.mp4``: the prefix before the first ``#``."""
    return name.split("#", 1)[0]


class VoxIndex(DatasetIndex):
    """``root/train/`` and ``root/test/``, each holding mp4 files or frame folders named
    ``<id>#<ytid>#<start>#<end>.mp4`` (folders of ``0000000.png ...``). All videos are real (label 0).
    A validation split is carved from ``train/`` by person id, so no person is in both.

    Args:
        root: the dataset root.
        val_fraction: share of training persons held out for validation (0 = none).
        seed: split seed.
    """

    def __init__(self, root: str, val_fraction: float = 0.05, seed: int = 0) -> None:
        self.root = Path(root)
        self.val_fraction = val_fraction
        self.seed = seed

    def records(self) -> list[VideoRecord]:
        require_dir(self.root, "dataset root")
        if not (self.root / "train").is_dir() and not (self.root / "test").is_dir():
            raise DatasetError(self.root, "expected train/ and/or test/ folders (video-preprocessing layout)")
        recs = []
        train = find_videos(self.root / "train") if (self.root / "train").is_dir() else []
        val_of = group_split((person_id(p.name) for p in train), self.val_fraction, 0.0, self.seed)
        for split, videos in (("train", train), ("test", None)):
            if videos is None:
                videos = find_videos(self.root / split) if (self.root / split).is_dir() else []
            for path in videos:
                pid = person_id(path.name)
                s = val_of[pid] if split == "train" else "test"
                recs.append(VideoRecord(f"{split}/{path.name}", str(path), 0, s, pid))
        return check_splits(recs, self.root, disjoint=("train", "val"))
