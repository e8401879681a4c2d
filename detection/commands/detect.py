"""``forgelab detect``: is this face video fake? Verdict (REAL / FAKE / INCONCLUSIVE), confidence, annotated video."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.commands.args import fraction, positive_int
from common.errors import ConfigError, ForgelabError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab detect``."""
    p = sub.add_parser("detect", help="is this face video fake? verdict, confidence, annotated video")
    p.add_argument("videos", nargs="+", type=Path)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="our .ckpt, a published model_<acc>_acc_<n>_frames_<tag>.pt or a MesoNet .h5 "
                        "(default: the newest sample run)")  # fmt: skip
    p.add_argument("--frames", type=positive_int, default=None, help="frames per clip (default: the detector's)")
    p.add_argument("--clips", type=positive_int, default=4, help="clips spread over the whole video")
    p.add_argument("--out", type=Path, default=None, help="annotated video (one input) or folder (several)")
    p.add_argument("--json", action="store_true", help="print the JSON result")
    p.add_argument("--cam", action="store_true", help="overlay a class-activation heatmap (Grad-CAM) in --out")
    p.add_argument("--threshold", type=fraction, default=0.5, help="FAKE when p(fake) is above this")
    p.add_argument("--band", type=fraction, default=0.1, help="INCONCLUSIVE when |p(fake) - threshold| < band")
    p.add_argument("--min-face-share", type=fraction, default=0.5,
                   help="INCONCLUSIVE when a face is detected in fewer of the scored frames")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from detection.annotate import write_annotated
    from detection.loading import load_detector
    from detection.predict import VerdictRules, analyse, clip_cams, extractor_for, print_result

    if args.cam and args.out is None:
        raise ConfigError("--cam draws on the annotated video: give --out too")
    detector = load_detector(args.checkpoint, args.device)  # once for every video
    extractor = extractor_for(detector)
    rules = VerdictRules(args.threshold, args.band, args.min_face_share)
    code = 0
    for video in args.videos:
        try:
            analysis = analyse(video, detector, extractor, args.clips, args.frames, rules)
            result = analysis.result
            if args.out is not None:
                out = args.out if len(args.videos) == 1 else args.out / f"{video.stem}_annotated.mp4"
                if len(args.videos) > 1:
                    args.out.mkdir(parents=True, exist_ok=True)
                cams = clip_cams(detector, analysis) if args.cam else None
                result["annotated_video"] = str(write_annotated(video, out, result, extractor, cams))
            print_result(result, args.json)
        except ForgelabError as exc:
            if len(args.videos) == 1:
                raise
            print(f"forgelab detect: error: {exc}", flush=True)
            code = max(code, exc.exit_code)
    return code
