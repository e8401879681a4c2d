"""``forgelab bench-segmenter``: co-segmentation training it/s (Lightning vs a plain loop) and inference fps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.commands.args import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab bench-segmenter``."""
    p = sub.add_parser("bench-segmenter", help="co-segmentation training it/s (Lightning vs plain loop), fps")
    p.add_argument("--size", type=positive_int, default=None, help="default: 256 on GPU, 128 on CPU")
    p.add_argument("--batch", type=positive_int, default=None, help="default: 20 on GPU, 4 on CPU")
    p.add_argument("--iters", type=positive_int, default=6)
    p.add_argument("--out", type=Path, default=Path("outputs/bench_segmenter.json"))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import torch

    from generation.benchmark import run

    gpu = torch.cuda.is_available()
    res = run(args.size or (256 if gpu else 128), args.batch or (20 if gpu else 4), args.iters)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return 0
