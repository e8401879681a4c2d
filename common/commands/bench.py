"""``forgelab bench preprocess``: decode and face-extraction speed, batched vs the naive way, as ratios."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.benchmark import run


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab bench``."""
    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline measured in the same run)")
    p.add_argument("what", choices=["preprocess"])
    p.add_argument("--out", type=Path, default=Path("outputs/bench_preprocess.json"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames-720p", type=int, default=48)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    res = run(args.out, args.device, args.frames_720p)
    print(f"{'video':<16}{'decode f/s':>12}{'batched f/s':>13}{'naive f/s':>11}{'speedup':>9}{'box diff px':>13}")
    for key in ("sample", "synthetic_720p"):
        r = res[key]
        print(
            f"{key:<16}{r['decode']['frames_per_second']:>12}{r['extract_batched']['frames_per_second']:>13}"
            f"{r['extract_naive']['frames_per_second']:>11}{r['speedup']:>8}x{r['box_mean_abs_diff_px']!s:>13}"
        )
    print(f"bench: wrote {args.out}")
    return 0
