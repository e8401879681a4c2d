"""``forgelab swap``: transplant face parts of a source face into every frame of a video."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.commands.args import image_size, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab swap``."""
    p = sub.add_parser("swap", help="transplant face parts of a source face into every frame of a video")
    p.add_argument("--checkpoint", required=True, type=Path, help="ours .ckpt, native or first-order-model file")
    p.add_argument("--source", required=True, type=Path, help="image with the face giving the parts")
    p.add_argument("--target", required=True, type=Path, help="video receiving them (any size)")
    p.add_argument("--parts", required=True, help="segment indices or names, e.g. 2 or 7,9 or lips,eyes")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--hard", action="store_true", help="binary mask (sum of the parts > 0.5)")
    p.add_argument("--use-source-segmentation", action="store_true", help="mask from the source, warped")
    p.add_argument("--side-by-side", action="store_true", help="write source | target | result")
    p.add_argument("--num-segments", type=int, default=None, help="refuse a checkpoint with another K")
    p.add_argument("--size", type=image_size, default=None, help="model resolution (default: the checkpoint's, or 256)")
    p.add_argument(
        "--margin", type=float, default=None, help="crop side / face box side (default: the model's, or 1.6)"
    )
    p.add_argument("--source-cropped", action="store_true", help="the source image is already a face crop")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from common.outputs import output_file
    from generation.swap import load_segmenter, swap_video

    output_file(args.out)  # checked before any work
    model = load_segmenter(args.checkpoint, args.num_segments, args.size, args.device)
    parts = model.parse_parts(args.parts)
    res = swap_video(model, args.source, args.target, args.out, parts, args.hard, args.use_source_segmentation,
                     args.side_by_side, args.margin, args.source_cropped, args.batch_size)  # fmt: skip
    names = ", ".join(f"{p} ({model.part_names[p]})" if p in model.part_names else str(p) for p in parts)
    w, h = res["size"]
    print(f"swap: parts {names} of {args.source} -> {res['output']} ({res['frames']} frames, {w}x{h}, "
          f"{res['fps']:.2f} fps; model {model.kind} K={model.num_segments})")  # fmt: skip
    return 0
