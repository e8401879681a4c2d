"""``forgelab preprocess``: a dataset -> a face-crop cache, resumably, in parallel, in shards."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.commands.args import (
    add_dataset_arguments,
    frame_spec,
    image_size,
    index_from_args,
    non_negative_int,
    parse_shard,
    positive_int,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab preprocess``."""
    p = sub.add_parser("preprocess", help="extract face crops of a dataset into a cache folder")
    add_dataset_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="cache folder to create or resume")
    p.add_argument(
        "--frames",
        type=frame_spec,
        default="even:32",
        help="all | even:N | first:N | windows:K:L (K runs of L frames); default even:32",
    )
    p.add_argument("--splits", default="train,val,test", help="comma-separated splits to process")
    p.add_argument("--crop-size", type=image_size, default=224)
    p.add_argument("--margin", type=float, default=1.3, help="crop side / detector box side")
    p.add_argument("--stretch", action="store_true", help="cut the face box itself (not a square), stretched")
    p.add_argument("--workers", type=positive_int, default=1, help="parallel processes (one detector each)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--batch-size", type=positive_int, default=None, help="frames per detector batch (default 4 CPU, 32 GPU)"
    )
    p.add_argument(
        "--detect-max-side", type=non_negative_int, default=480, help="detect at most at this resolution (0 = full)"
    )
    p.add_argument("--detect-every", type=positive_int, default=1,
                   help="face detector on every k-th frame of each run, the others interpolated")  # fmt: skip
    p.add_argument("--shard", type=parse_shard, default=(0, 1), help="process shard i of n (e.g. 0/4)")
    p.set_defaults(func=main, streams_frames=True)


def main(args: argparse.Namespace) -> int:
    """Run the preprocess command; returns the exit code (3 when some videos failed)."""
    from common.outputs import output_dir
    from common.preprocess import PreprocessConfig, run_preprocess

    splits = {s.strip() for s in args.splits.split(",") if s.strip()}
    records = [r for r in index_from_args(args).records() if r.split in splits]
    config = PreprocessConfig(
        frames=args.frames,
        crop_size=args.crop_size,
        margin=args.margin,
        square=not args.stretch,
        device=args.device,
        batch_size=args.batch_size,
        detect_max_side=args.detect_max_side or None,
        detect_every=args.detect_every,
    )
    output_dir(args.out)  # checked before any work
    summary = run_preprocess(records, args.out, config, workers=args.workers, shard=args.shard)
    print(
        f"preprocess: {summary['ok']} ok, {summary['failed']} failed, {summary['skipped']} skipped; "
        f"{summary['frames']} frames in {summary['seconds']} s ({summary['frames_per_second']} frames/s)"
    )
    for f in summary["failures"][:10]:
        print(f"  failed {f['video_id']}: {f['reason']}")
    if summary["failed"]:
        print(f"  all failures: {args.out / 'failures.csv'}")
    return 3 if summary["failed"] else 0
