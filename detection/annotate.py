"""Annotated verdict videos: face box, label and confidence on every frame, and a score timeline.

Boxes come from face tracking over every frame; the label colour is the video's verdict (green REAL,
red FAKE, amber INCONCLUSIVE); the strip at the bottom plots each clip's p(fake) over the video's length with the 0.5
threshold and a cursor at the current frame. The output keeps the input's size, fps and audio.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from common.errors import NoFaceError
from common.faces import FaceExtractor, region_overlap
from common.video import VideoReader, write_video

GREEN = (40, 200, 70)
RED = (230, 40, 40)
AMBER = (245, 165, 20)
VERDICT_COLOURS = {"REAL": GREEN, "FAKE": RED, "INCONCLUSIVE": AMBER}


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def frame_scores(result: dict[str, Any], num_frames: int) -> np.ndarray:
    """p(fake) per frame: each frame takes the score of the clip whose centre is nearest."""
    centres = np.array([(c["start"] + c["end"]) / 2 for c in result["clips"]])
    scores = np.array([c["p_fake"] for c in result["clips"]])
    frames = np.arange(num_frames)
    return scores[np.argmin(np.abs(frames[:, None] - centres[None, :]), axis=1)]


def draw_frame(frame: np.ndarray, box: np.ndarray | None, result: dict[str, Any], per_frame: np.ndarray,
               index: int, heat: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """One annotated frame (uint8 ``[H, W, 3]``); ``heat`` = (crop region, CAM) to overlay."""
    h, w = frame.shape[:2]
    if heat is not None:
        frame = paste_heat(frame, *heat)
    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    colour = VERDICT_COLOURS[result["verdict"]]
    font = _font(max(10, h // 14))
    line = max(2, h // 120)
    if box is not None:
        draw.rectangle([float(v) for v in box], outline=colour, width=line)
    text = (f"{result['verdict']} {result['confidence']:.0f}%" if result["verdict"] != "INCONCLUSIVE"
            else f"INCONCLUSIVE p(fake) {result['p_fake']:.2f}")  # fmt: skip
    x0 = float(box[0]) if box is not None else 4.0
    y0 = float(box[1]) if box is not None else 4.0
    tb = draw.textbbox((0, 0), text, font=font)
    ty = max(0.0, y0 - (tb[3] - tb[1]) - 2 * line)
    draw.rectangle([x0, ty, x0 + tb[2] - tb[0] + 2 * line, ty + tb[3] - tb[1] + 2 * line], fill=colour)
    draw.text((x0 + line, ty - tb[1] + line), text, fill=(255, 255, 255), font=font)
    # timeline strip: p(fake) per frame, threshold, cursor
    strip = max(12, h // 8)
    top = h - strip
    draw.rectangle([0, top, w, h], fill=(20, 20, 20))
    n = len(per_frame)
    ys = top + (1 - per_frame) * (strip - 2) + 1
    xs = np.linspace(0, w - 1, n)
    draw.line([(0, top + strip / 2), (w, top + strip / 2)], fill=(120, 120, 120), width=1)  # p = 0.5
    draw.line(list(zip(xs.tolist(), ys.tolist())), fill=(255, 200, 0), width=max(1, line - 1))
    cx = xs[index]
    draw.line([(cx, top), (cx, h)], fill=(255, 255, 255), width=1)
    return np.asarray(img)


def paste_heat(frame: np.ndarray, region: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Overlay a CAM (crop coordinates) on the crop ``region`` of ``frame`` (stretched back when not square)."""
    from detection.cam import overlay

    out = frame.copy()
    overlap = region_overlap(region, frame.shape)
    if overlap is not None:
        in_frame, in_region = overlap
        size = (int(region[2]) - int(region[0]), int(region[3]) - int(region[1]))
        big = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(size, Image.BILINEAR)) / 255
        out[in_frame] = overlay(out[in_frame], big[in_region])
    return out


def write_annotated(video: str | Path, out: str | Path, result: dict[str, Any], extractor: FaceExtractor,
                    cams: dict[int, np.ndarray] | None = None) -> Path:  # fmt: skip
    """Track the face on every frame and write the annotated video (atomically, with the source audio).

    ``cams`` (frame number -> heatmap in crop coordinates) overlays each frame with the CAM of the
    nearest scored frame, placed on that frame's face crop.
    """
    with VideoReader(video) as reader:
        info = reader.info
        try:
            track = extractor.extract(reader, crops=False)
            boxes = {int(f): b for f, b in zip(track.frame_indices, track.boxes)}
            regions = {int(f): r for f, r in zip(track.frame_indices, track.crop_boxes)}
        except NoFaceError:  # the scored frames had faces; boxes are optional for the annotation
            boxes, regions = {}, {}
    per_frame = frame_scores(result, info.num_frames)
    cam_frames = np.array(sorted(cams)) if cams else None

    def heat_for(i: int) -> tuple[np.ndarray, np.ndarray] | None:
        if cam_frames is None or i not in regions:
            return None
        nearest = int(cam_frames[np.argmin(np.abs(cam_frames - i))])
        return regions[i], cams[nearest]

    def frames() -> Iterator[np.ndarray]:
        with VideoReader(video) as reader:
            for idx, chunk in reader.iter_chunks(32):
                for i, frame in zip(idx.tolist(), chunk):
                    yield draw_frame(frame, boxes.get(i), result, per_frame, min(i, info.num_frames - 1), heat_for(i))

    return write_video(out, frames(), info.fps, audio_from=video)
