"""Argument helpers shared by several commands (dataset choice, shards, positive counts)."""

from __future__ import annotations

import argparse

from common.datasets import LAYOUTS, DatasetIndex, build_index


def add_dataset_arguments(
    parser: argparse.ArgumentParser, required: bool = True, seed_help: str = "split seed"
) -> None:
    """Add ``--dataset``, ``--root`` and the layout-specific options to a sub-command (``required``: the command
    needs ``--root``; else it has another input, and says so in its help)."""
    parser.add_argument("--dataset", choices=LAYOUTS, default="folder", help="dataset layout")
    parser.add_argument("--root", help="dataset root (csv: the manifest; single: one video)" + ("; required" if required
                        else ""))  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--compression", default="c23", help="FaceForensics++: raw|c0|c23|c40")
    parser.add_argument("--methods", default="", help="FaceForensics++: comma-separated methods")
    parser.add_argument("--splits-dir", default=None, help="FaceForensics++: folder of train/val/test.json")


def index_from_args(args: argparse.Namespace) -> DatasetIndex:
    """The :class:`DatasetIndex` the arguments describe."""
    from common.errors import ConfigError

    if not args.root:
        raise ConfigError("--root is required (the dataset root, the CSV manifest or the video)")
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


def add_frame_data_arguments(parser: argparse.ArgumentParser, size: int, train_clips: int, clips: int) -> None:
    """The dataset arguments plus those of a detector fitted on one vector per face crop (``forgelab fingerprint``,
    ``forgelab transfer``): crop cache, self-blended pseudo-fakes, crop size and margin, crops per video."""
    from pathlib import Path

    add_dataset_arguments(parser)
    add_config_argument(parser)
    parser.add_argument("--cache", type=Path, default=None, help="face-crop cache (default: detect faces on the fly)")
    parser.add_argument(
        "--self-blend", action="store_true", help="train and evaluate against self-blended pseudo-fakes"
    )
    parser.add_argument("--size", type=image_size, default=size, help="face-crop side")
    parser.add_argument("--margin", type=float, default=1.3, help="face-crop side / face-box side")
    parser.add_argument("--train-clips", type=positive_int, default=train_clips, help="training crops drawn per video")
    parser.add_argument("--clips", type=positive_int, default=clips, help="evaluation crops per video")
    parser.add_argument("--eval-split", default="val", choices=["val", "test"])
    # --seed (from the dataset arguments) also seeds the training crops and pseudo-fakes drawn


def frame_data(args: argparse.Namespace):  # noqa: ANN201  (a VideoDataModule; Lightning is imported lazily)
    """The set-up data module of :func:`add_frame_data_arguments`: clips of one frame, the training crops and
    pseudo-fakes drawn under ``--seed`` (one seed, the same crops)."""
    import torch

    from common.data import VideoDataModule
    from common.selfblend import SelfBlend

    torch.manual_seed(args.seed)
    dm = VideoDataModule(index_from_args(args), cache_dir=str(args.cache) if args.cache else None, clip_len=1,
                         eval_clips=args.clips, size=args.size, margin=args.margin, batch_size=16, num_workers=0,
                         faces_on_the_fly=args.cache is None, repeats=args.train_clips, seed=args.seed,
                         self_blend=SelfBlend(paired=True) if args.self_blend else None)  # fmt: skip
    dm.setup("fit")
    return dm


def frame_data_settings(args: argparse.Namespace, dataset_hash: str) -> dict:
    """What the cached per-crop vectors of :func:`frame_data` depend on (a cache is reused only when equal)."""
    keys = ("size", "margin", "train_clips", "clips", "self_blend", "seed", "eval_split")
    return {"dataset": dataset_hash, **{k: getattr(args, k) for k in keys}}


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` (repeatable): YAML mappings of this command's options, merged in order and read before the
    rest of the command line (which wins). ``experiments/<command>_<name>.yaml`` over
    ``experiments/base/<command>.yaml`` are such files; keys are the options' names (``train_clips: 128``,
    ``self_blend: true``)."""
    from pathlib import Path

    parser.add_argument("--config", type=Path, action="append", default=None,
                        help="YAML of this command's options (later files, then the command line, win)")  # fmt: skip


def config_tokens(paths: list) -> list[str]:
    """The command-line tokens of merged YAML option files (:func:`add_config_argument`): ``key: v`` ->
    ``--key v``; ``true`` -> the bare flag, ``false`` / ``null`` -> nothing; a list -> ``--key v1 v2``."""
    import yaml

    from common.errors import ConfigError

    merged: dict = {}
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the option file {path}: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of option names to values")
        merged.update(data)
    tokens: list[str] = []
    for key, value in merged.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            tokens.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            tokens += [flag, *(str(v) for v in value)]
        else:
            tokens += [flag, str(value)]
    return tokens
