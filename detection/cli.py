"""``forgelab detect`` and ``forgelab evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common.datasets.registry import add_dataset_arguments, index_from_args
from common.errors import ConfigError, ForgelabError


def add_detect(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab detect``."""
    p = sub.add_parser("detect", help="is this face video fake? verdict, confidence, annotated video")
    p.add_argument("videos", nargs="+", type=Path)
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="our .ckpt or a published model_<acc>_acc_<n>_frames_<tag>.pt (default: newest sample run)",
    )
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: the checkpoint's)")
    p.add_argument("--clips", type=int, default=4, help="clips spread over the whole video")
    p.add_argument("--out", type=Path, default=None, help="annotated video (one input) or folder (several)")
    p.add_argument("--json", action="store_true", help="print the JSON result")
    p.add_argument("--cam", action="store_true", help="overlay a class-activation heatmap (Grad-CAM) in --out")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=detect_main)  # fmt: skip


def detect_main(args: argparse.Namespace) -> int:
    from common.faces import FaceExtractor
    from detection.annotate import write_annotated
    from detection.predict import analyse, clip_cams, load_detector, print_result

    if args.cam and args.out is None:
        raise ConfigError("--cam draws on the annotated video: give --out too")
    detector = load_detector(args.checkpoint, args.device)  # once for every video
    extractor = FaceExtractor(crop_size=detector.size, device=args.device)
    code = 0
    for video in args.videos:
        try:
            result, _ = analyse(video, detector, extractor, args.clips, args.frames)
            if args.out is not None:
                out = args.out if len(args.videos) == 1 else args.out / f"{video.stem}_annotated.mp4"
                if len(args.videos) > 1:
                    args.out.mkdir(parents=True, exist_ok=True)
                cams = clip_cams(detector, result) if args.cam else None
                result["annotated_video"] = str(write_annotated(video, out, result, extractor, cams))
            print_result(result, args.json)
        except ForgelabError as exc:
            if len(args.videos) == 1:
                raise
            print(f"forgelab detect: error: {exc}", flush=True)
            code = max(code, exc.exit_code)
    return code


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab evaluate``."""
    p = sub.add_parser("evaluate", help="metrics of a detector on a dataset split: JSON + ROC/confusion PNGs")
    add_dataset_arguments(p)
    p.add_argument("--checkpoint", type=Path, default=None, help="our .ckpt or a published model_*.pt")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--cache", type=Path, default=None, help="face-crop cache (default: detect faces on the fly)")
    p.add_argument("--clips", type=int, default=4, help="clips per video")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: the checkpoint's)")
    p.add_argument("--aggregation", default="mean", choices=["mean", "max", "confident"])
    p.add_argument("--self-blend", action="store_true", help="add self-blended pseudo-fakes of the real videos")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("outputs/evaluation"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=evaluate_main)


def evaluate_main(args: argparse.Namespace) -> int:
    from common.data import VideoDataModule
    from common.selfblend import SelfBlend
    from detection.metrics import aggregate, binary_metrics, confusion, confusion_image, roc_image
    from detection.predict import load_detector

    detector = load_detector(args.checkpoint, args.device)
    dm = VideoDataModule(index_from_args(args), cache_dir=str(args.cache) if args.cache else None, mode="clip",
                         clip_len=args.frames or detector.clip_len, eval_clips=args.clips, size=detector.size,
                         batch_size=args.batch_size, num_workers=0, faces_on_the_fly=args.cache is None,
                         self_blend=SelfBlend() if args.self_blend else None)  # fmt: skip
    dm.setup("test")
    if not dm.records[args.split]:
        raise ConfigError(f"the {args.split} split of this dataset is empty")
    scores, labels, ids = [], [], []
    from tqdm import tqdm

    for batch in tqdm(dm._loader(args.split), desc="evaluate", unit="batch"):
        scores.extend(detector.p_fake(batch["video"]).tolist())
        labels.extend(batch["label"].tolist())
        ids.extend(batch["video_id"])
    v_scores, v_labels, _ = aggregate(scores, labels, ids, args.aggregation)
    report = {
        "checkpoint": detector.path, "detector": detector.kind, "split": args.split, "aggregation": args.aggregation,
        "frames_per_clip": dm.clip_len, "clips_per_video": args.clips, "dataset_hash": dm.dataset_hash,
        "clip_level": binary_metrics(scores, labels), "video_level": binary_metrics(v_scores, v_labels),
        "video_confusion": confusion(v_scores, v_labels).tolist(),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2))
    from PIL import Image

    for name, image in (
        ("roc_clip", roc_image(scores, labels, "ROC (clip level)")),
        ("roc_video", roc_image(v_scores, v_labels, "ROC (video level)")),
        ("confusion_video", confusion_image(v_scores, v_labels, "confusion (video level)")),
    ):
        arr = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(args.out / f"{name}.png")
    c, v = report["clip_level"], report["video_level"]
    print(f"evaluate: {args.split}: clip AUC {c['auc']:.4f} ACC {c['acc']:.4f} EER {c['eer']:.4f} (n={c['n']}); "
          f"video AUC {v['auc']:.4f} ACC {v['acc']:.4f} AP {v['ap']:.4f} EER {v['eer']:.4f} (n={v['n']})")  # fmt: skip
    print(f"evaluate: wrote {args.out / 'metrics.json'} and ROC / confusion PNGs")
    return 0
