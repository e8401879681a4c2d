"""``forgelab robustness``: every detector on every perturbed copy of a split (H.264, resizing, JPEG, blur,
noise, contrast, saturation at five levels) -> robustness.json, robustness.md and one PNG per detector."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.commands.args import add_dataset_arguments, frame_spec, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab robustness``."""
    p = sub.add_parser("robustness", help="detectors' verdicts under compression, resizing, blur, noise and colour "
                       "changes: JSON, Markdown and a PNG per detector")  # fmt: skip
    p.add_argument("videos", nargs="*", type=Path, help="videos to perturb instead of a dataset split")
    p.add_argument("--checkpoint", type=Path, nargs="+", action="extend", required=True,
                   help="detector files: our .ckpt, fingerprint / transfer .pt, published model_*.pt, "
                   "MesoNet .h5")  # fmt: skip
    add_dataset_arguments(p, required=False, seed_help="split seed, and the noise's seed")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--label", choices=["real", "fake", "unknown"], default="unknown",
                   help="VIDEO arguments: their label (unknown: p(fake), its change and flips only)")  # fmt: skip
    p.add_argument("--suite", type=Path, default=None,
                   help="YAML table of perturbations (default: DeeperForensics-1.0's levels, "
                   "experiments/robustness/deeperforensics.yaml, a copy to edit)")  # fmt: skip
    p.add_argument("--only", default="", help="comma-separated perturbation names to run (default: all)")
    p.add_argument("--clips", type=positive_int, default=4, help="clips per video")
    p.add_argument("--cache-frames", type=frame_spec, default="all",
                   help="frames of each video tracked and kept: all, or first:N for long videos (clips need runs of "
                   "consecutive frames)")  # fmt: skip
    p.add_argument("--max-videos", type=positive_int, default=None, help="at most this many videos, classes in turn")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--out", type=Path, default=Path("outputs/robustness"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from common.commands.args import index_from_args
    from common.data import balanced_head
    from common.datasets import VideoRecord
    from common.errors import ConfigError
    from common.outputs import output_dir
    from common.perturb import load_suite
    from detection.loading import load_detector
    from detection.robustness import RobustnessRun, evaluate_robustness, safe_name, write_report

    out = output_dir(args.out)  # checked before any work
    if bool(args.videos) == bool(args.root):
        raise ConfigError("give either VIDEO files or --dataset/--root (a split of a dataset)")
    suite = load_suite(args.suite, [n for n in args.only.split(",") if n] or None)
    if args.videos:
        label = {"real": 0, "fake": 1}.get(args.label, 0)
        missing = [str(v) for v in args.videos if not v.exists()]
        if missing:
            raise ConfigError(f"no such video: {', '.join(missing)}")
        records = [VideoRecord(safe_name(v.with_suffix("").as_posix()), str(v), label, args.split, v.stem)
                   for v in args.videos]  # fmt: skip
        labelled = args.label != "unknown"
    else:
        records = index_from_args(args).split(args.split)
        if not records:
            raise ConfigError(f"the {args.split} split of {args.root} is empty")
        labelled = True
    if args.max_videos:
        records = balanced_head(records, args.max_videos)
    detectors = [load_detector(path, args.device) for path in args.checkpoint]  # every file checked first
    job = RobustnessRun(records, args.split, suite, out, args.clips, args.cache_frames, labelled, args.seed,
                        args.batch_size)  # fmt: skip
    report = evaluate_robustness(job, detectors)
    path = write_report(report, out)
    print(path.read_text())
    print(f"robustness: wrote {path}, robustness.json and {len(detectors)} PNG(s) in {out}")
    return 0
