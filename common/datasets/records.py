"""The record every dataset index yields, the index interface and leakage-free split helpers."""

from __future__ import annotations

import hashlib
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import DatasetError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset.

    Attributes:
        video_id: unique, stable, path-like id (used as the cache key), e.g. ``"Celeb-real/id0_0000"``.
        path: the video file or frame folder.
        label: 1 = fake, 0 = real.
        split: ``"train"``, ``"val"``, ``"test"`` (or ``"unassigned"`` when a layout gives none).
        group: identity / source group; videos sharing a group never land in different splits.
        method: manipulation method for fakes (``""`` for real videos or when unknown).
        frames: optional ``(start, stop)`` frame range of the video that this record covers (e.g. a
            time-disjoint train/val split of one video); ``None`` = the whole video.
        extra: layout-specific details (e.g. a Celeb-DF fake's source identity).
    """

    video_id: str
    path: str
    label: int
    split: str
    group: str
    method: str = ""
    frames: tuple[int, int] | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)


class DatasetIndex(ABC):
    """A dataset layout read in place. Subclasses take the root (and options) in their constructor."""

    @abstractmethod
    def records(self) -> list[VideoRecord]:
        """All records, each with its split; raises :class:`DatasetError` for a wrong layout."""

    def split(self, name: str) -> list[VideoRecord]:
        """Records of one split (``train``, ``val``, ``test``)."""
        return [r for r in self.records() if r.split == name]


def group_split(groups: Iterable[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """Assign whole groups to train/val/test, reproducibly.

    Args:
        groups: group names (duplicates allowed).
        val_fraction: share of groups for validation.
        test_fraction: share of groups for test.
        seed: the shuffle seed.

    Returns:
        group -> split name. Groups are sorted before a seeded shuffle, so the result depends only on
        the set of groups and the seed.
    """
    names = sorted(set(groups))
    random.Random(seed).shuffle(names)
    n = len(names)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n - n_test >= 2:
        n_val = max(n_val, 1)
    if test_fraction > 0 and n >= 3:
        n_test = max(n_test, 1)
    out = {}
    for i, g in enumerate(names):
        out[g] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def index_hash(records: Sequence[VideoRecord]) -> str:
    """A short sha256 of the records (id, label, split, group): logged with every run."""
    rows = sorted((r.video_id, r.label, r.split, r.group, r.method) for r in records)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def require_dir(path: Path, what: str) -> Path:
    """Raise :class:`DatasetError` unless ``path`` is a readable directory."""
    if not path.exists():
        raise DatasetError(path, f"{what} does not exist")
    if not path.is_dir():
        raise DatasetError(path, f"{what} is not a directory")
    try:
        next(path.iterdir(), None)
    except PermissionError:
        raise DatasetError(path, f"{what} is not readable (permission denied)") from None
    return path


def check_splits(
    records: Sequence[VideoRecord], where: str | Path, disjoint: Sequence[str] = SPLITS
) -> list[VideoRecord]:
    """Raise when an index produced nothing, or when a group appears in two of the ``disjoint`` splits."""
    if not records:
        raise DatasetError(where, "no videos found")
    seen: dict[str, str] = {}
    for r in records:
        if r.split not in disjoint:
            continue
        prev = seen.setdefault(r.group, r.split)
        if prev != r.split:
            raise DatasetError(where, f"group {r.group!r} appears in both {prev} and {r.split}")
    return list(records)
