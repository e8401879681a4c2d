"""Annotated verdict videos: face box, label and confidence on every frame, and a score timeline.

Boxes come from key-frame face tracking over the whole video (:mod:`common.tracking`: one frame in
``TRACK_EVERY`` through the detector, the rest interpolated, every frame where the track is lost); the
video is then decoded a second time, drawn on and encoded as it streams (decode -> draw -> encode), so
memory does not grow with its length; the label colour is the video's verdict (green REAL,
red FAKE, amber INCONCLUSIVE); the strip at the bottom plots each clip's p(fake) over the video's length with the 0.5
threshold and a cursor at the current frame. The output keeps the input's size, fps and audio.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from common.encode import write_video
from common.errors import NoFaceError
from common.faces import FaceExtractor, region_overlap
from common.tracking import TRACK_EVERY
from common.video import VideoReader

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


class FrameAnnotator:
    """Draws the verdict on frames of one size; everything that is the same on every frame (the label, the
    timeline strip) is rendered once, so a frame costs a few array copies (no full-frame image conversions).

    Args:
        result: the ``analyse`` result (verdict, confidence, p(fake)).
        per_frame: p(fake) per frame ``[N]`` (:func:`frame_scores`).
        size: ``(width, height)`` of the frames.
    """

    def __init__(self, result: dict[str, Any], per_frame: np.ndarray, size: tuple[int, int]) -> None:
        w, h = size
        self.colour = np.array(VERDICT_COLOURS[result["verdict"]], np.uint8)
        self.line = max(2, h // 120)
        self.label = self._label(result, _font(max(10, h // 14)))
        strip = max(12, h // 8)
        self.top = max(0, h - strip)
        self.strip = self._strip(per_frame, w, h - self.top)
        self.xs = np.round(np.linspace(0, w - 1, len(per_frame))).astype(int)

    def _label(self, result: dict[str, Any], font: ImageFont.ImageFont) -> np.ndarray:
        text = (f"{result['verdict']} {result['confidence']:.0f}%" if result["verdict"] != "INCONCLUSIVE"
                else f"INCONCLUSIVE p(fake) {result['p_fake']:.2f}")  # fmt: skip
        tb = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
        img = Image.new("RGB", (tb[2] - tb[0] + 2 * self.line, tb[3] - tb[1] + 2 * self.line), tuple(self.colour))
        ImageDraw.Draw(img).text((self.line, self.line - tb[1]), text, fill=(255, 255, 255), font=font)
        return np.asarray(img)

    @staticmethod
    def _strip(per_frame: np.ndarray, w: int, strip: int) -> np.ndarray:
        """The timeline: p(fake) per frame as a yellow line, the 0.5 threshold grey."""
        img = Image.new("RGB", (w, strip), (20, 20, 20))
        draw = ImageDraw.Draw(img)
        ys = (1 - per_frame) * (strip - 2) + 1
        xs = np.linspace(0, w - 1, len(per_frame))
        draw.line([(0, strip / 2), (w, strip / 2)], fill=(120, 120, 120), width=1)  # p = 0.5
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=(255, 200, 0), width=max(1, strip // 60))
        return np.asarray(img)

    def __call__(self, frame: np.ndarray, box: np.ndarray | None, index: int) -> np.ndarray:
        """Annotate ``frame [H, W, 3]`` uint8 in place (and return it): face ``box``, label, timeline with the
        cursor at frame ``index``."""
        h, w = frame.shape[:2]
        if box is not None:
            x0, y0, x1, y1 = (int(round(float(v))) for v in box)
            t = self.line
            for ys, xs in ((slice(y0, y0 + t), slice(x0, x1)), (slice(y1 - t, y1), slice(x0, x1)),
                           (slice(y0, y1), slice(x0, x0 + t)), (slice(y0, y1), slice(x1 - t, x1))):  # fmt: skip
                ys = slice(max(ys.start, 0), min(max(ys.stop, 0), h))
                xs = slice(max(xs.start, 0), min(max(xs.stop, 0), w))
                frame[ys, xs] = self.colour
            lx, ly = max(0, x0), max(0, y0 - self.label.shape[0])
        else:
            lx, ly = 4, 4
        lh, lw = min(self.label.shape[0], h - ly), min(self.label.shape[1], w - lx)
        if lh > 0 and lw > 0:
            frame[ly : ly + lh, lx : lx + lw] = self.label[:lh, :lw]
        frame[self.top :] = self.strip
        frame[self.top :, self.xs[min(index, len(self.xs) - 1)]] = 255  # cursor
        return frame


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
                    cams: dict[int, np.ndarray] | None = None, detect_every: int = TRACK_EVERY) -> Path:  # fmt: skip
    """Track the face over the whole video and write the annotated video (atomically, with the source audio).

    ``cams`` (frame number -> heatmap in crop coordinates) overlays each frame with the CAM of the
    nearest scored frame, placed on that frame's face crop. ``detect_every``: key-frame spacing of the
    tracking (1 = the detector on every frame).
    """
    with VideoReader(video) as reader:
        info = reader.info
        times = reader.frame_times()  # kept in the output: a variable frame rate stays in sync with the audio
        try:
            track = extractor.extract(reader, crops=False, detect_every=detect_every)
            boxes = {int(f): b for f, b in zip(track.frame_indices, track.boxes)}
            regions = {int(f): r for f, r in zip(track.frame_indices, track.crop_boxes)}
        except NoFaceError:  # the scored frames had faces; boxes are optional for the annotation
            boxes, regions = {}, {}
    annotate = FrameAnnotator(result, frame_scores(result, info.num_frames), (info.width, info.height))
    cam_frames = np.array(sorted(cams)) if cams else None

    def heat_for(i: int) -> tuple[np.ndarray, np.ndarray] | None:
        if cam_frames is None or i not in regions:
            return None
        nearest = int(cam_frames[np.argmin(np.abs(cam_frames - i))])
        return regions[i], cams[nearest]

    def frames() -> Iterator[np.ndarray]:
        with VideoReader(video) as reader:
            for i, frame in reader.iter_frames():  # one frame in memory at a time
                heat = heat_for(i)
                yield annotate(frame if heat is None else paste_heat(frame, *heat), boxes.get(i), i)

    return write_video(out, frames(), info.fps, audio_from=video, times=times)
