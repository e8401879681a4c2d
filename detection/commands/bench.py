"""``forgelab bench-detector``: detect wall time vs the published project's way, ``detect --out`` time and
peak memory vs ``detect``, training clips/s, and the long-distance attention detector's costs vs its backbone."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.commands.args import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab bench-detector``."""
    p = sub.add_parser(
        "bench-detector", help="detect vs the published way; detect --out cost; training clips/s; attention detector"
    )
    p.add_argument("--clips", type=positive_int, default=4)
    p.add_argument("--frames", type=positive_int, default=20)
    p.add_argument("--long-seconds", type=float, default=180.0,
                   help="length of the long 1080p video for detect --out (0 skips it)")  # fmt: skip
    p.add_argument(
        "--only-attention",
        action="store_true",
        help="only the long-distance attention detector's costs against its Xception backbone",
    )
    p.add_argument("--out", type=Path, default=Path("outputs/bench_detector.json"))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from detection.benchmark import attention_costs, run

    if args.only_attention:
        from common.faces import resolve_device

        res = attention_costs(resolve_device("auto"))
    else:
        res = run(args.clips, args.frames, long_seconds=args.long_seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return 0
