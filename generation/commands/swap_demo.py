"""``forgelab swap-demo``: the part covering the mouth in the sample video's most open-mouthed frame swapped into
every frame of it."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab swap-demo``."""
    p = sub.add_parser("swap-demo", help="swap the part covering the open mouth of one frame of the sample video into "
                       "all of it")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("outputs"))
    p.add_argument("--checkpoint", type=Path, default=None, help="default: pretrained/ vox checkpoint, else sample")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from common.outputs import output_dir
    from generation.demo import swap_demo

    output_dir(args.out)  # checked before any work
    res = swap_demo(args.out, args.checkpoint)
    print(f"swap-demo: model: {res['model']}; parts {res['parts']}; wrote {res['output']} (source | target | result), "
          f"{res['segments_sheet']} and {args.out / 'carphone_swap.json'}")  # fmt: skip
    return 0
