"""``forgelab compare``: several detectors through one protocol (the same videos, split and clips; each detector's
own crops), one leaderboard: Markdown, CSV and a bar chart."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.commands.args import LAYOUTS, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab compare``."""
    p = sub.add_parser("compare", help="several detectors, one protocol, one leaderboard (Markdown, CSV, PNG)")
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                   help="detector files: our .ckpt, fingerprint .pt, published model_*.pt, MesoNet .h5")  # fmt: skip
    p.add_argument(
        "--dataset",
        choices=LAYOUTS,
        default=None,
        help="dataset layout (default: the bundled sample video, with self-blended pseudo-fakes)",
    )
    p.add_argument("--root", default=None, help="dataset root (csv: the manifest; single: one video)")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--compression", default="c23", help="FaceForensics++: raw|c0|c23|c40")
    p.add_argument("--methods", default="", help="FaceForensics++: comma-separated methods")
    p.add_argument("--splits-dir", default=None, help="FaceForensics++: folder of train/val/test.json")
    p.add_argument("--split", default=None, choices=["train", "val", "test"], help="default: val on the sample, "
                   "else test")  # fmt: skip
    p.add_argument("--cache", type=Path, default=None, help="face-crop cache (default: detect faces on the fly)")
    p.add_argument(
        "--clips", type=positive_int, default=None, help="clips per video (default 48 on the sample, else 4)"
    )
    p.add_argument("--self-blend", action="store_true", help="add self-blended pseudo-fakes of the real videos")
    p.add_argument("--max-videos", type=positive_int, default=None, help="at most this many videos, classes in turn")
    p.add_argument("--out", type=Path, default=Path("outputs/compare"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import sys

    from common.assets import SAMPLE_VIDEO
    from common.commands.args import index_from_args
    from common.errors import ConfigError, ForgelabError
    from common.outputs import output_dir
    from detection.compare import row, write_leaderboard
    from detection.loading import load_detector
    from detection.protocol import Protocol, score_split

    out = output_dir(args.out)  # checked before any work
    sample = args.root is None
    if sample and args.dataset not in (None, "single"):
        raise ConfigError(f"--dataset {args.dataset} needs --root")
    args.dataset, args.root = (args.dataset or "single"), (args.root or str(SAMPLE_VIDEO))
    protocol = Protocol(index_from_args(args), args.split or ("val" if sample else "test"),
                        args.clips or (48 if sample else 4), None, args.cache, args.self_blend or sample,
                        args.max_videos)  # fmt: skip
    detectors = [load_detector(path, args.device) for path in args.checkpoint]  # every file checked first
    rows, reports = [], []
    for detector in detectors:
        try:
            scored = score_split(detector, protocol)
        except ForgelabError as exc:
            print(f"forgelab compare: {detector.path}: {exc}", file=sys.stderr, flush=True)
            raise
        r, report = row(detector, scored)
        rows.append(r)
        reports.append({"file": detector.path, "detector": detector.describe(), **report})
        print(f"compare: {r['detector']}: clip AUC {r['clip_auc']:.4f}, video AUC {r['video_auc']:.4f}, "
              f"{r['inference_frames_per_s']:.1f} frames/s", flush=True)  # fmt: skip
    table = write_leaderboard(rows, reports, protocol, out)
    print(table.read_text())
    print(f"compare: wrote {table}, leaderboard.csv, leaderboard.png and reports.json")
    return 0
