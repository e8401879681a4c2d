"""``forgelab bench-detector``: detect wall time vs the published project's way, and training clips/s."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.commands.args import positive_int
from detection.benchmark import run


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab bench-detector``."""
    p = sub.add_parser("bench-detector", help="detect wall time vs the published way; training clips/s")
    p.add_argument("--clips", type=positive_int, default=4)
    p.add_argument("--frames", type=positive_int, default=20)
    p.add_argument("--out", type=Path, default=Path("outputs/bench_detector.json"))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    res = run(args.clips, args.frames)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return 0
