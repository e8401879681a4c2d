"""Argument helpers shared by several commands (dataset choice, shards, positive counts)."""

from __future__ import annotations

import argparse

from common.datasets import LAYOUTS, DatasetIndex, build_index


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--dataset``, ``--root`` and the layout-specific options to a sub-command."""
    parser.add_argument("--dataset", choices=LAYOUTS, default="folder", help="dataset layout")
    parser.add_argument("--root", required=True, help="dataset root (csv: the manifest; single: one video)")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--compression", default="c23", help="FaceForensics++: raw|c0|c23|c40")
    parser.add_argument("--methods", default="", help="FaceForensics++: comma-separated methods")
    parser.add_argument("--splits-dir", default=None, help="FaceForensics++: folder of train/val/test.json")


def index_from_args(args: argparse.Namespace) -> DatasetIndex:
    """The :class:`DatasetIndex` the arguments describe."""
    methods = [m for m in args.methods.split(",") if m] if args.methods else None
    return build_index(args.dataset, args.root, args.seed, args.compression, methods, args.splits_dir)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard {text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 0 <= i < n")
    return i, n


def int_at_least(text: str, minimum: int) -> int:
    """``text`` as an integer >= ``minimum``, or an :class:`argparse.ArgumentTypeError` saying why not."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return int_at_least(text, 0)


MIN_IMAGE_SIZE = 32  # the detectors' and segmenters' five stride-2 stages need at least this many pixels


def image_size(text: str) -> int:
    """An argparse type: a crop or model resolution in pixels, at least :data:`MIN_IMAGE_SIZE`."""
    return int_at_least(text, MIN_IMAGE_SIZE)


def frame_spec(text: str) -> str:
    """An argparse type: a frame sampling spec (``all``, ``even:N``, ``first:N``, ``windows:K:L`` or ``N``),
    checked when the command line is parsed."""
    from common.errors import ConfigError
    from common.video import sample_indices

    try:
        sample_indices(100, text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def fraction(text: str) -> float:
    """An argparse type: a float in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} must lie in [0, 1]")
    return value
