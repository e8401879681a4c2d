"""``forgelab export-segmenter``: a trained CosegmentationSystem checkpoint -> the original native format."""

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
    from common.checkpoints import read_checkpoint
    from generation.checkpoints import export_native
    from generation.system import CosegmentationSystem

    read_checkpoint(args.checkpoint)  # clear errors for missing / corrupt / HTML files first
    try:
        system = CosegmentationSystem.load_from_checkpoint(args.checkpoint, map_location="cpu", weights_only=True,
                                                           vgg="random")  # fmt: skip
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(args.checkpoint, f"not a CosegmentationSystem checkpoint ({exc})") from None
    out = export_native(system.segmentation_module, system.reconstruction_module, args.out,
                        epoch=int(read_checkpoint(args.checkpoint).get("epoch", 0)))  # fmt: skip
    print(f"export-segmenter: wrote {out} (K = {system.hparams.num_segments})")
    return 0


def add_swap(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--size", type=int, default=None, help="model resolution (default: the checkpoint's, or 256)")
    p.add_argument(
        "--margin", type=float, default=None, help="crop side / face box side (default: the model's, or 1.6)"
    )
    p.add_argument("--source-cropped", action="store_true", help="the source image is already a face crop")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=swap_main)


def swap_main(args: argparse.Namespace) -> int:
    from generation.swap import load_segmenter, swap_video

    model = load_segmenter(args.checkpoint, args.num_segments, args.size, args.device)
    parts = model.parse_parts(args.parts)
    res = swap_video(model, args.source, args.target, args.out, parts, args.hard, args.use_source_segmentation,
                     args.side_by_side, args.margin, args.source_cropped, args.batch_size)  # fmt: skip
    names = ", ".join(f"{p} ({model.part_names[p]})" if p in model.part_names else str(p) for p in parts)
    w, h = res["size"]
    print(f"swap: parts {names} of {args.source} -> {res['output']} ({res['frames']} frames, {w}x{h}, "
          f"{res['fps']:.2f} fps; model {model.kind} K={model.num_segments})")  # fmt: skip
    return 0


def add_segments(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab segments``."""
    p = sub.add_parser("segments", help="draw each segment index of a face in its colour (to choose --parts)")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--image", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--size", type=int, default=None)
    p.add_argument(
        "--margin", type=float, default=None, help="crop side / face box side (default: the model's, or 1.6)"
    )
    p.add_argument("--source-cropped", action="store_true", help="the image is already a face crop")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=segments_main)


def segments_main(args: argparse.Namespace) -> int:
    import os

    from common.errors import VideoWriteError
    from common.faces import FaceExtractor
    from common.video import read_image
    from generation.swap import ensure_face, load_segmenter, segment_sheet

    model = load_segmenter(args.checkpoint, None, args.size, args.device)
    extractor = FaceExtractor(crop_size=model.size, margin=args.margin or model.margin or 1.6, device=args.device)
    face = ensure_face(read_image(args.image), extractor, str(args.image), args.source_cropped, model.size)
    if not args.out.parent.is_dir():
        raise VideoWriteError(args.out, f"folder {args.out.parent} does not exist")
    tmp = args.out.with_name(f".{args.out.name}.partial.png")
    segment_sheet(model, face).save(tmp)
    os.replace(tmp, args.out)
    print(f"segments: wrote {args.out} ({model.num_segments} segments; model {model.kind})")
    return 0


def add_swap_demo(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab swap-demo``."""
    p = sub.add_parser("swap-demo", help="swap a part of skimage's astronaut into the bundled sample video")
    p.add_argument("--out", type=Path, default=Path("outputs"))
    p.add_argument("--checkpoint", type=Path, default=None, help="default: pretrained/ vox checkpoint, else sample")
    p.set_defaults(func=swap_demo_main)


def swap_demo_main(args: argparse.Namespace) -> int:
    import json

    from PIL import Image
    from skimage.data import astronaut

    import pretrained
    from common.checkpoints import newest_best_checkpoint
    from common.errors import CheckpointError
    from generation.swap import load_segmenter, swap_video

    root = Path(__file__).resolve().parent.parent
    ckpt, parts, which = args.checkpoint, None, "given checkpoint"
    if ckpt is None:
        for name, p in (("coseg_vox10", "lips"), ("coseg_vox5", "hair")):
            found = pretrained.available(name)
            if found is not None:
                ckpt, parts, which = found, p, f"published {found.name}"
                break
    if ckpt is None:
        ckpt = newest_best_checkpoint("outputs/runs/segmenter_sample")
        if ckpt is None:
            raise CheckpointError("pretrained/vox-10segments.pth.tar", "not found, and no sample segmenter run: "
                                  "run `make train-segmenter` first")  # fmt: skip
        which = "the sample segmenter trained here (64 px, one video): expect a weak swap"
    model = load_segmenter(ckpt, device="auto")
    chosen = model.parse_parts(parts) if parts else [min(2, model.num_segments)]
    args.out.mkdir(parents=True, exist_ok=True)
    source = args.out / "astronaut.png"
    Image.fromarray(astronaut()).save(source)
    segments_args = argparse.Namespace(checkpoint=ckpt, image=source, out=args.out / "astronaut_segments.png",
                                       size=None, margin=None, source_cropped=False, device="auto")  # fmt: skip
    segments_main(segments_args)
    res = swap_video(model, source, root / "assets" / "carphone_pristine.mp4", args.out / "carphone_swap.mp4",
                     chosen, side_by_side=True)  # fmt: skip
    (args.out / "carphone_swap.json").write_text(json.dumps({**res, "model": which}, indent=2))
    print(f"swap-demo: model: {which}; parts {chosen}; wrote {res['output']} (source | target | result), "
          f"{args.out / 'astronaut_segments.png'} and carphone_swap.json")  # fmt: skip
    return 0
