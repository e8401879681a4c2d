"""Choosing a dataset index from the command line: ``--dataset KIND --root PATH [options]``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from common.datasets.celebdf import CelebDFIndex
from common.datasets.ffpp import FaceForensicsIndex
from common.datasets.generic import CsvIndex, FolderIndex
from common.datasets.records import DatasetIndex
from common.datasets.single import SingleVideoIndex
from common.datasets.vox import VoxIndex

BUILDERS: dict[str, Callable[[argparse.Namespace], DatasetIndex]] = {
    "folder": lambda a: FolderIndex(a.root, seed=a.seed),
    "csv": lambda a: CsvIndex(a.root, seed=a.seed),
    "celebdf": lambda a: CelebDFIndex(a.root, seed=a.seed),
    "ffpp": lambda a: FaceForensicsIndex(
        a.root,
        compression=a.compression,
        methods=a.methods.split(",") if a.methods else None,
        splits_dir=a.splits_dir,
        seed=a.seed,
    ),  # fmt: skip
    "vox": lambda a: VoxIndex(a.root, seed=a.seed),
    "single": lambda a: SingleVideoIndex(a.root),
}


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--dataset``, ``--root`` and the layout-specific options to a sub-command."""
    parser.add_argument("--dataset", choices=sorted(BUILDERS), default="folder", help="dataset layout")
    parser.add_argument("--root", required=True, help="dataset root (csv: the manifest; single: one video)")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--compression", default="c23", help="FaceForensics++: raw|c0|c23|c40")
    parser.add_argument("--methods", default="", help="FaceForensics++: comma-separated methods")
    parser.add_argument("--splits-dir", default=None, help="FaceForensics++: folder of train/val/test.json")


def index_from_args(args: argparse.Namespace) -> DatasetIndex:
    """The :class:`DatasetIndex` the arguments describe."""
    return BUILDERS[args.dataset](args)
