"""Following one face through a video with the face detector on key frames only.

Faces move little between neighbouring frames, so running the detector on every frame of a whole video
(what annotating, swapping and preprocessing need) mostly re-finds the same box. :class:`KeyframeTracker`
runs it on every ``every``-th frame of each run of consecutive frame numbers (and on each run's first and
last frame); the frames in between take boxes interpolated from their key frames (:func:`common.faces.
smooth_boxes`). Whenever two neighbouring key frames disagree - a face in one and not the other, or the
followed face moved so much that the boxes overlap by less than ``refine_iou`` - the track is treated as
lost and every frame between them goes through the detector too. Frames stream through in bounded memory:
only the downscaled frames since the last key frame are held (at most ``(batch_size + 1) * every``).

:class:`FacePicker` is the single rule that picks one face per frame: follow the previous frame's face by
overlap (so a second person does not steal the track), else take the largest confident face.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_iou

from common.mtcnn import Detections

TRACK_EVERY = 4  # key-frame spacing for whole-video tracking (see ``forgelab bench preprocess``)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    return float(box_iou(torch.as_tensor(a[None], dtype=torch.float32), torch.as_tensor(b[None], dtype=torch.float32)))


@dataclass(frozen=True)
class FacePicker:
    """Picks the one face a track follows in each frame.

    Attributes:
        min_score: faces below this detection probability are ignored.
        track_iou: a face overlapping the previously followed face by at least this IoU is followed
            instead of the largest face.
    """

    min_score: float = 0.9
    track_iou: float = 0.3

    def pick(self, det: Detections, prev: np.ndarray | None) -> int | None:
        """Index of the followed face in ``det`` (``prev``: the last followed box ``[4]``), or ``None``."""
        keep = np.flatnonzero(det.scores >= self.min_score)
        if not len(keep):
            return None
        bx = det.boxes[keep]
        j = int(np.argmax((bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1])))
        if prev is not None:
            overlap = box_iou(torch.from_numpy(bx), torch.from_numpy(prev[None].astype(np.float32)))[:, 0].numpy()
            if overlap.max() >= self.track_iou:
                j = int(np.argmax(overlap))
        return int(keep[j])

    def select(self, detections: Sequence[Detections]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One face per frame, in order.

        Returns:
            ``(boxes [N, 4] NaN where none, landmarks [N, 5, 2], scores [N], detected [N] bool)``.
        """
        n = len(detections)
        boxes = np.full((n, 4), np.nan, np.float32)
        lms = np.zeros((n, 5, 2), np.float32)
        scores = np.zeros((n,), np.float32)
        prev: np.ndarray | None = None
        for i, det in enumerate(detections):
            j = self.pick(det, prev)
            if j is not None:
                boxes[i], lms[i], scores[i] = det.boxes[j], det.landmarks[j], det.scores[j]
                prev = det.boxes[j]
        return boxes, lms, scores, ~np.isnan(boxes[:, 0])


class KeyframeTracker:
    """Streams frames in, runs the detector on key frames (and on every frame where the track was lost).

    Args:
        detect: downscaled frames (a list of same-size images) -> one :class:`Detections` each, in
            full-frame coordinates.
        picker: the face-picking rule.
        every: key-frame spacing within each run of consecutive frames (1 = every frame).
        refine_iou: neighbouring key frames whose followed faces overlap less than this (or where only
            one has a face) get every frame between them detected.
        batch_size: key frames per detector call.

    Feed frames with :meth:`push` in increasing frame order, then call :meth:`finish`.
    """

    def __init__(self, detect: Callable[[list[Any]], list[Detections]], picker: FacePicker, every: int = TRACK_EVERY,
                 refine_iou: float = 0.5, batch_size: int = 4) -> None:  # fmt: skip
        self.detect = detect
        self.picker = picker
        self.every = max(1, int(every))
        self.refine_iou = refine_iou
        self.batch_size = max(1, int(batch_size))
        self.frame_indices: list[int] = []
        self.detections: list[Detections] = []
        self.interpolated: list[bool] = []
        self.refined = 0  # frames detected because neighbouring key frames disagreed
        self._pending: list[tuple[int, Any, bool]] = []  # (frame number, small image, is key), after the last key
        self._waiting: tuple[int, Any] | None = None  # the newest frame: whether it ends its run is not known yet
        self._last_flagged: int | None = None
        self._run_pos = 0
        self._prev: np.ndarray | None = None  # the box the picker follows
        self._key_box: np.ndarray | None = None  # the followed box at the last key frame

    def push(self, indices: Sequence[int], images: Sequence[Any]) -> None:
        """Add frames (numbers ``[b]`` and their downscaled images) in increasing frame order."""
        for f, img in zip(indices, images):
            f = int(f)
            if self._waiting is not None:
                self._flag(*self._waiting, run_end=f != self._waiting[0] + 1)
            self._waiting = (f, img)
        if sum(key for *_, key in self._pending) >= self.batch_size:
            self._resolve()

    def finish(self) -> tuple[np.ndarray, list[Detections], np.ndarray]:
        """``(frame numbers [N], detections per frame (empty where not detected), interpolated [N] bool)``."""
        if self._waiting is not None:
            self._flag(*self._waiting, run_end=True)
            self._waiting = None
        self._resolve()
        return np.asarray(self.frame_indices, np.int64), self.detections, np.asarray(self.interpolated, bool)

    def _flag(self, f: int, img: Any, run_end: bool) -> None:
        start = self._last_flagged is None or f != self._last_flagged + 1
        self._run_pos = 0 if start else self._run_pos + 1
        self._pending.append((f, img, start or run_end or self._run_pos % self.every == 0))
        self._last_flagged = f

    def _detect(self, images: list[Any]) -> list[Detections]:
        out: list[Detections] = []
        for s in range(0, len(images), self.batch_size):
            out.extend(self.detect(images[s : s + self.batch_size]))
        return out

    def _emit(self, f: int, det: Detections, interpolated: bool) -> np.ndarray | None:
        j = None if interpolated else self.picker.pick(det, self._prev)
        if j is not None:
            self._prev = det.boxes[j]
        self.frame_indices.append(f)
        self.detections.append(det)
        self.interpolated.append(interpolated)
        return None if j is None else det.boxes[j]

    def _disagree(self, box: np.ndarray | None) -> bool:
        if (box is None) != (self._key_box is None):
            return True
        return box is not None and iou(box, self._key_box) < self.refine_iou

    def _resolve(self) -> None:
        keys = [j for j, (_, _, key) in enumerate(self._pending) if key]
        if not keys:
            return
        found = self._detect([self._pending[j][1] for j in keys])
        start = 0
        for j, det in zip(keys, found):
            between = self._pending[start:j]  # frames since the previous key frame (same run)
            pick = self.picker.pick(det, self._prev)
            box = None if pick is None else det.boxes[pick]
            if between and self._disagree(box):  # the track was lost: detect every frame in between
                self.refined += len(between)
                for (f, _, _), d in zip(between, self._detect([img for _, img, _ in between])):
                    self._emit(f, d, interpolated=False)
            else:
                for f, _, _ in between:
                    self._emit(f, Detections.empty(), interpolated=True)
            self._key_box = self._emit(self._pending[j][0], det, interpolated=False)
            start = j + 1
        del self._pending[:start]
