"""``forgelab segments``: draw each segment of a face in its colour, to choose ``swap --parts``."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.commands.args import image_size


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab segments``."""
    p = sub.add_parser("segments", help="draw each segment index of a face in its colour (to choose --parts)")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--image", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--size", type=image_size, default=None)
    p.add_argument(
        "--margin", type=float, default=None, help="crop side / face box side (default: the model's, or 1.6)"
    )
    p.add_argument("--source-cropped", action="store_true", help="the image is already a face crop")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from common.outputs import output_file
    from generation.swap import load_segmenter, segment_sheet_file

    output_file(args.out)  # checked before any work
    model = load_segmenter(args.checkpoint, None, args.size, args.device)
    segment_sheet_file(model, args.image, args.out, args.margin, args.source_cropped)
    print(f"segments: wrote {args.out} ({model.num_segments} segments; model {model.kind})")
    return 0
