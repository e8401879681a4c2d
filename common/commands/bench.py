"""``forgelab bench preprocess``: decode and face-extraction speed, batched vs the naive way, as ratios."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab bench``."""
    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline measured in the same run)")
    p.add_argument("what", choices=["preprocess"])
    p.add_argument("--out", type=Path, default=Path("outputs/bench_preprocess.json"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic 720p and 1080p videos")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from common.benchmark import run

    res = run(args.out, args.device, args.seconds)
    print(f"{'video':<17}{'decode':>8}{'tracked':>9}{'every frame':>13}{'per frame':>11}{'vs every':>10}"
          f"{'vs per':>8}{'box diff px':>13}   (frames/s)")  # fmt: skip
    for key in ("sample", "synthetic_720p", "synthetic_1080p"):
        r = res[key]
        print(
            f"{key:<17}{r['decode']['frames_per_second']:>8}{r['tracked']['frames_per_second']:>9}"
            f"{r['every_frame_batched']['frames_per_second']:>13}{r['per_frame_naive']['frames_per_second']:>11}"
            f"{r['speedup_vs_every_frame']:>9}x{r['speedup_vs_per_frame']:>7}x{r['box_mean_abs_diff_px']!s:>13}"
        )
    print(f"bench: wrote {args.out}")
    return 0
