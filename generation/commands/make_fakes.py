"""``forgelab make-fakes``: a folder dataset (real/, fake/, manifest.csv) of forgelab's own part swaps (or
self-blends) of real videos, for testing detectors on manipulations they were not trained on."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.commands.args import add_dataset_arguments, fraction, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab make-fakes``."""
    p = sub.add_parser("make-fakes", help="a detector test set (real/, fake/, manifest.csv) of part swaps or "
                       "self-blends of real videos")  # fmt: skip
    p.add_argument("real", nargs="*", type=Path, help="real videos, or folders of them")
    add_dataset_arguments(p, required=False, seed_help="the dataset's split seed, and make-fakes' split and "
                          "self-blend seed")  # fmt: skip
    p.add_argument("--from-split", default="test", choices=["train", "val", "test"], help="that dataset's split")
    p.add_argument("--identity-by", choices=["file", "folder"], default="file",
                   help="real VIDEO arguments: a video's identity is its file name, or its first folder below the "
                   "given folder")  # fmt: skip
    p.add_argument("--method", choices=["part-swap", "self-blend"], default="part-swap")
    p.add_argument("--sources", type=Path, nargs="+", default=[],
                   help="part-swap: source faces (images, videos: their middle frame, or folders of them)")  # fmt: skip
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="part-swap: co-segmentation checkpoint (default: a published one in pretrained/, else the "
                   "newest sample segmenter)")  # fmt: skip
    p.add_argument("--parts", nargs="+", default=None,
                   help="part-swap: one fake per choice, each indices or names (e.g. 2 7,9 lips); default: the "
                   "published model's lips, else every segment alone")  # fmt: skip
    p.add_argument("--variants", type=positive_int, default=1, help="fakes per real video and choice (new draws)")
    p.add_argument("--segments", type=positive_int, default=1, help="cut each real video into this many parts")
    p.add_argument("--split", default="auto", choices=["auto", "train", "val", "test"],
                   help="auto: drawn per identity group (no identity in two splits); else every video in "
                   "it")  # fmt: skip
    p.add_argument("--val-fraction", type=fraction, default=0.15)
    p.add_argument("--test-fraction", type=fraction, default=0.15)
    p.add_argument("--crf", type=int, default=18, help="x264 quality of every written video (reals too)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=main)


def real_videos(args: argparse.Namespace) -> list:
    """The real videos the arguments name (``RealVideo``), before cutting into segments."""
    from common.commands.args import index_from_args
    from common.datasets.generic import find_videos
    from common.errors import ConfigError
    from generation.fakes import RealVideo

    if bool(args.real) == bool(args.root):
        raise ConfigError("give either real VIDEO files / folders or --dataset/--root")
    if args.root:
        records = [r for r in index_from_args(args).split(args.from_split) if r.label == 0]
        if not records:
            raise ConfigError(f"the {args.from_split} split of {args.root} has no real video")
        return [RealVideo(r.video_id.replace("/", "_").replace("@", "_"), r.path, r.group.replace("/", "_"), r.frames)
                for r in records]  # fmt: skip
    out = []
    for given in args.real:
        if not given.exists():
            raise ConfigError(f"no such video {given}")
        for f in [given] if given.is_file() else find_videos(given):
            rel = f.relative_to(given) if given.is_dir() else Path(f.name)
            identity = rel.parts[0] if args.identity_by == "folder" and len(rel.parts) > 1 else f.stem
            out.append(RealVideo(f.stem, str(f), identity))
    if not out:
        raise ConfigError("no real videos found")
    return out


def main(args: argparse.Namespace) -> int:
    from common.errors import ConfigError
    from common.outputs import output_dir
    from common.video import probe
    from generation.fakes import MakeFakes, find_sources, plan, segments

    out = output_dir(args.out)
    reals = [s for r in real_videos(args) for s in segments(r, args.segments, probe(r.path).num_frames)]
    model, sources, parts = None, [], []
    if args.method == "part-swap":
        from generation.demo import choose_segmenter
        from generation.swap import load_segmenter

        if not args.sources:
            raise ConfigError("part-swap needs --sources (face images or videos)")
        sources = find_sources(args.sources)
        ckpt, default_parts, which = choose_segmenter(args.checkpoint)
        model = load_segmenter(ckpt, device=args.device)
        choices = args.parts or (
            [default_parts] if default_parts else [str(k) for k in range(1, model.num_segments + 1)]
        )
        parts = [tuple(model.parse_parts(c)) for c in choices]
        print(f"make-fakes: co-segmentation model: {which} ({ckpt})", flush=True)
    jobs = plan(reals, args.method, sources, parts, args.variants)
    summary = MakeFakes(out, args.method, model, args.split, args.val_fraction, args.test_fraction, args.seed,
                        args.crf).run(jobs)  # fmt: skip
    print(f"make-fakes: {summary['real']} real and {summary['fake']} fake videos in {out} ({summary['made']} made, "
          f"{summary['skipped']} already there, {summary['failed']} failed); splits {summary['splits']}; "
          f"{summary['frames_per_s']} frames/s; manifest {out / 'manifest.csv'}")  # fmt: skip
    return 0 if summary["videos"] else 1
