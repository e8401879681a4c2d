"""Dataset indexes: read the layouts users already have on disk, in place, into :class:`VideoRecord`s."""

from __future__ import annotations

from collections.abc import Sequence

from common.datasets.celebdf import CelebDFIndex
from common.datasets.ffpp import FaceForensicsIndex
from common.datasets.generic import CsvIndex, FolderIndex
from common.datasets.records import DatasetIndex, VideoRecord, group_split, index_hash
from common.datasets.single import SingleVideoIndex
from common.datasets.vox import VoxIndex
from common.errors import ConfigError

LAYOUTS = ("folder", "csv", "celebdf", "ffpp", "vox", "single")


def build_index(
    kind: str,
    root: str,
    seed: int = 0,
    compression: str = "c23",
    methods: Sequence[str] | None = None,
    splits_dir: str | None = None,
) -> DatasetIndex:
    """The index of a dataset layout by name (``folder``, ``csv``, ``celebdf``, ``ffpp``, ``vox``, ``single``).

    ``root`` is the dataset root (``csv``: the manifest file; ``single``: one video); ``compression``,
    ``methods`` and ``splits_dir`` are FaceForensics++ options.
    """
    if kind == "folder":
        return FolderIndex(root, seed=seed)
    if kind == "csv":
        return CsvIndex(root, seed=seed)
    if kind == "celebdf":
        return CelebDFIndex(root, seed=seed)
    if kind == "ffpp":
        return FaceForensicsIndex(root, compression=compression, methods=list(methods) if methods else None,
                                  splits_dir=splits_dir, seed=seed)  # fmt: skip
    if kind == "vox":
        return VoxIndex(root, seed=seed)
    if kind == "single":
        return SingleVideoIndex(root)
    raise ConfigError(f"dataset layout {kind!r}: expected one of {', '.join(LAYOUTS)}")


__all__ = [
    "LAYOUTS",
    "CelebDFIndex",
    "CsvIndex",
    "DatasetIndex",
    "FaceForensicsIndex",
    "FolderIndex",
    "SingleVideoIndex",
    "VideoRecord",
    "VoxIndex",
    "build_index",
    "group_split",
    "index_hash",
]
