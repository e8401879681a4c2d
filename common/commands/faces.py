"""``forgelab faces``: find, track and crop the face of a video; write a contact sheet and a JSON summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.commands.args import frame_spec, image_size, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab faces``."""
    p = sub.add_parser("faces", help="extract the face track of a video: contact sheet + JSON summary")
    p.add_argument("video", type=Path)
    p.add_argument("--out", type=Path, default=Path("outputs"))
    p.add_argument("--frames", type=frame_spec, default="all", help="all | even:N | first:N | windows:K:L")
    p.add_argument("--crop-size", type=image_size, default=112)
    p.add_argument("--detect-every", type=positive_int, default=1,
                   help="run the face detector on every k-th frame and interpolate the others (faster)")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.set_defaults(func=main, streams_frames=True)


def main(args: argparse.Namespace) -> int:
    from common.facesheet import extract_faces_report
    from common.outputs import output_dir

    output_dir(args.out)  # checked before any work
    s = extract_faces_report(args.video, args.out, args.frames, args.crop_size, args.device, args.detect_every)
    print(
        f"faces: {s['frames_with_face']}/{s['frames_processed']} frames with a face "
        f"({100 * s['face_rate']:.1f} %), box jitter {s['box_jitter_raw_px']} -> {s['box_jitter_smoothed_px']} px, "
        f"{s['frames_per_second']} frames/s"
    )
    print(f"faces: wrote {s['contact_sheet']} and {args.out / (args.video.stem + '_faces.json')}")
    return 0
