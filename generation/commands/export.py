"""``forgelab export-segmenter``: a trained SegmenterSystem checkpoint -> the original native format."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.errors import CheckpointError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab export-segmenter``."""
    p = sub.add_parser("export-segmenter", help="export a co-segmentation checkpoint to the original format")
    p.add_argument("--checkpoint", required=True, type=Path, help="our Lightning .ckpt")
    p.add_argument("--out", required=True, type=Path, help="native .pth.tar to write")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from common.outputs import output_file
    from common.weights import read_checkpoint
    from generation.checkpoints import export_native
    from generation.system import SegmenterSystem

    output_file(args.out)  # checked before any work
    read_checkpoint(args.checkpoint)  # clear errors for missing / corrupt / HTML files first
    try:
        system = SegmenterSystem.load_from_checkpoint(args.checkpoint, map_location="cpu", weights_only=True,
                                                           vgg="random")  # fmt: skip
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(args.checkpoint, f"not a SegmenterSystem checkpoint ({exc})") from None
    out = export_native(system.segmentation_module, system.reconstruction_module, args.out,
                        epoch=int(read_checkpoint(args.checkpoint).get("epoch", 0)))  # fmt: skip
    print(f"export-segmenter: wrote {out} (K = {system.hparams.num_segments})")
    return 0
