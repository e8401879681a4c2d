"""``forgelab detect``: is this face video fake? Verdict (REAL / FAKE / INCONCLUSIVE), confidence, annotated video."""

from __future__ import annotations

import argparse
import sys
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
    p.add_argument("--clips", type=positive_int, default=None,
                   help="clips spread over the whole video (default 4, more when a clip scores few frames: >= 16 "
                        "frames scored)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="annotated video (one input) or folder (several)")
    p.add_argument("--json", action="store_true", help="print the JSON result")
    p.add_argument(
        "--cam",
        action="store_true",
        help="overlay where the detector looked in --out: Grad-CAM, or the detector's attention maps",
    )
    p.add_argument(
        "--cam-map",
        default=None,
        help="which explanation --cam draws (e.g. 'temporal attention'; default the detector's first)",
    )
    p.add_argument("--threshold", type=fraction, default=0.5, help="FAKE when p(fake) is above this")
    p.add_argument("--band", type=fraction, default=0.1, help="INCONCLUSIVE when |p(fake) - threshold| < band")
    p.add_argument("--min-face-share", type=fraction, default=0.5,
                   help="INCONCLUSIVE when a face is detected in fewer of the scored frames")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.set_defaults(func=main, streams_frames=True)


def annotated_outputs(videos: list[Path], out: Path | None) -> dict[Path, Path]:
    """Where each video's annotated copy goes (``out`` itself for one video, ``out/<stem>_annotated.mp4``
    for several), checked before any work; refuses two inputs that would write the same file."""
    from common.outputs import output_dir, output_file

    if out is None:
        return {}
    if len(videos) == 1:
        return {videos[0]: output_file(out)}
    folder = output_dir(out)
    names: dict[Path, Path] = {}
    for video in videos:
        target = folder / f"{video.stem}_annotated.mp4"
        clash = next((v for v, t in names.items() if t == target), None)
        if clash is not None:
            raise ConfigError(f"{clash} and {video} would both be annotated into {target}: rename one of them or "
                              "run them separately")  # fmt: skip
        names[video] = target
    return names


def main(args: argparse.Namespace) -> int:
    from detection.annotate import write_annotated
    from detection.loading import load_detector
    from detection.predict import VerdictRules, analyse, clip_cams, extractor_for, print_result

    if args.cam and args.out is None:
        raise ConfigError("--cam draws on the annotated video: give --out too")
    if args.cam_map is not None and not args.cam:
        raise ConfigError("--cam-map chooses what --cam draws: give --cam too")
    outputs = annotated_outputs(args.videos, args.out)  # checked before any work
    detector = load_detector(args.checkpoint, args.device)  # once for every video
    extractor = extractor_for(detector)
    rules = VerdictRules(args.threshold, args.band, args.min_face_share)
    code = 0
    for video in args.videos:
        try:
            analysis = analyse(video, detector, extractor, args.clips, args.frames, rules)
            result = analysis.result
            if outputs:
                out = outputs[video]
                cams = clip_cams(detector, analysis, args.cam_map) if args.cam else None
                result["annotated_video"] = str(write_annotated(video, out, result, extractor, cams))
            print_result(result, args.json)
        except ForgelabError as exc:
            if len(args.videos) == 1:
                raise
            print(f"forgelab detect: error: {exc}", file=sys.stderr, flush=True)
            code = max(code, exc.exit_code)
    return code
