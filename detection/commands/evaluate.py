"""``forgelab evaluate``: metrics of any detector on a dataset split (JSON + ROC / confusion PNGs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.commands.args import add_dataset_arguments, fraction, index_from_args, positive_int
from common.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab evaluate``."""
    p = sub.add_parser("evaluate", help="metrics of a detector on a dataset split: JSON + ROC/confusion PNGs")
    add_dataset_arguments(p)
    p.add_argument("--checkpoint", type=Path, default=None, help="our .ckpt, a published model_*.pt or a MesoNet .h5")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--cache", type=Path, default=None, help="face-crop cache (default: detect faces on the fly)")
    p.add_argument("--clips", type=positive_int, default=4, help="clips per video")
    p.add_argument("--frames", type=positive_int, default=None, help="frames per clip (default: the detector's)")
    p.add_argument("--aggregation", default=None, choices=["mean", "max", "confident"],
                   help="clip -> video rule (default: the detector's)")  # fmt: skip
    p.add_argument("--threshold", type=fraction, default=0.5, help="FAKE when p(fake) is above this")
    p.add_argument("--self-blend", action="store_true", help="add self-blended pseudo-fakes of the real videos")
    p.add_argument("--max-videos", type=positive_int, default=None, help="at most this many videos, classes in turn")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--out", type=Path, default=Path("outputs/evaluation"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from common.outputs import output_dir
    from detection.evaluation import report_images, summarise, write_report
    from detection.loading import load_detector
    from detection.protocol import Protocol, score_split

    output_dir(args.out)  # checked before any work
    detector = load_detector(args.checkpoint, args.device)
    spec = detector.spec
    if args.cache is not None:
        check_cache_fits(args.cache, spec.margin, spec.square)
    protocol = Protocol(index_from_args(args), args.split, args.clips, args.frames, args.cache, args.self_blend,
                        args.max_videos, args.batch_size)  # fmt: skip
    scored = score_split(detector, protocol)
    clips = scored.clips
    aggregation = args.aggregation or spec.aggregation
    report = {
        "checkpoint": detector.path, "detector": detector.describe(), "input_spec": spec.to_dict(),
        "split": args.split, "frames_per_clip": scored.frames_per_clip, "clips_per_video": args.clips,
        "dataset_hash": scored.dataset_hash, "inference_frames_per_s": round(scored.frames_per_s, 2),
        **summarise(clips, aggregation, args.threshold),
    }  # fmt: skip
    path = write_report(report, report_images(clips, aggregation, args.threshold), args.out)
    c, v = report["clip_level"], report["video_level"]
    print(f"evaluate: {args.split}: clip AUC {c['auc']:.4f} ACC {c['acc']:.4f} EER {c['eer']:.4f} (n={c['n']}); "
          f"video AUC {v['auc']:.4f} ACC {v['acc']:.4f} AP {v['ap']:.4f} EER {v['eer']:.4f} (n={v['n']}); "
          f"{report['n_failed']} videos failed (scored 0.5, listed in metrics.json)")  # fmt: skip
    print(f"evaluate: wrote {path} and ROC / confusion PNGs")
    return 0


def check_cache_fits(cache: Path, margin: float, square: bool) -> None:
    """Refuse a face cache cut with another margin or crop shape than the detector expects."""
    from common.cache import CONFIG_DEFAULTS, CONFIG_FILE

    path = cache / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{cache} is not a face cache (no {CONFIG_FILE}); run forgelab preprocess")
    built = json.loads(path.read_text())
    have = (float(built.get("margin", margin)), bool(built.get("square", CONFIG_DEFAULTS["square"])))
    if have != (float(margin), bool(square)):
        raise ConfigError(f"{cache} holds crops with margin {have[0]} ({'square' if have[1] else 'stretched'}); "
                          f"this detector expects margin {margin} ({'square' if square else 'stretched'}): "
                          f"evaluate without --cache or preprocess a matching cache")  # fmt: skip
