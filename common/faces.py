"""Face extraction: batched MTCNN detection, tracking, temporal box smoothing and square crops.

The detector is MTCNN with facenet-pytorch's networks and weights (they ship inside the package, so this
works offline), every stage batched (:mod:`common.mtcnn`). Frames are detected in batches, large frames at
reduced resolution with the boxes scaled back (the DFDC winners' recipe); with ``detect_every`` > 1 only
key frames go through the detector (:mod:`common.tracking`). Per frame one face is picked
(:class:`common.tracking.FacePicker`). Boxes of frames without a detection are interpolated linearly from
their neighbours and recorded, all boxes are smoothed over time with a Gaussian in frame-number distance
(so sparse samples of a long video are left alone), and each face is cut as a square enlarged ``margin``
times (1.3 by default, the FaceForensics++ protocol), zero-padded at frame borders and resized. Frames are
decoded in chunks; memory does not grow with the video's length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common.errors import NoFaceError
from common.mtcnn import Detections
from common.tracking import FacePicker, KeyframeTracker
from common.video import VideoReader


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> the first CUDA GPU when present, else the CPU; any other string as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class FaceTrack:
    """One face followed through the chosen frames of a video.

    Attributes:
        frame_indices: int64 ``[N]`` frame numbers in the source video.
        boxes: float32 ``[N, 4]`` smoothed ``(x1, y1, x2, y2)`` boxes (filled where no face was found).
        raw_boxes: float32 ``[N, 4]`` detector boxes before smoothing (NaN where no face was found).
        landmarks: float32 ``[N, 5, 2]`` 5-point landmarks in frame coordinates (filled likewise).
        scores: float32 ``[N]`` detection probabilities (0 where no face was found).
        detected: bool ``[N]`` whether a face was detected in that frame.
        crop_boxes: int64 ``[N, 4]`` the square region ``(x0, y0, x1, y1)`` cut from each frame.
        frame_size: ``(width, height)`` of the source frames.
        crops: uint8 ``[N, S, S, 3]`` RGB face crops, when requested.
        interpolated: bool ``[N]`` frames not run through the detector (``detect_every`` > 1) whose box
            comes from their detected neighbours.
    """

    frame_indices: np.ndarray
    boxes: np.ndarray
    raw_boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray
    detected: np.ndarray
    crop_boxes: np.ndarray
    frame_size: tuple[int, int]
    crops: np.ndarray | None = field(default=None, repr=False)
    interpolated: np.ndarray | None = None

    def crop_landmarks(self, size: int) -> np.ndarray:
        """Landmarks in crop pixel coordinates: float32 ``[N, 5, 2]`` for crops of ``size`` pixels."""
        return landmarks_in_crop(self.landmarks, self.crop_boxes, size)

    def missing(self) -> np.ndarray:
        """bool ``[N]``: frames run through the detector that had no face."""
        return ~self.detected if self.interpolated is None else ~self.detected & ~self.interpolated

    def to_meta(self) -> dict[str, Any]:
        """JSON-ready summary (lists of numbers) for the cache metadata."""
        return {
            "frame_indices": self.frame_indices.tolist(),
            "boxes": np.round(self.boxes, 2).tolist(),
            "raw_boxes": [None if np.isnan(b).any() else np.round(b, 2).tolist() for b in self.raw_boxes],
            "landmarks": np.round(self.landmarks, 2).tolist(),
            "scores": np.round(self.scores, 4).tolist(),
            "crop_boxes": self.crop_boxes.tolist(),
            "frames_without_face": self.frame_indices[self.missing()].tolist(),
            "frames_interpolated": [] if self.interpolated is None else self.frame_indices[self.interpolated].tolist(),
            "frame_size": list(self.frame_size),
        }


def landmarks_in_crop(landmarks: np.ndarray, crop_boxes: np.ndarray, size: int) -> np.ndarray:
    """Frame-coordinate landmarks ``[N, 5, 2]`` -> pixel coordinates of the ``size`` crops cut at
    ``crop_boxes [N, 4]`` (``x0, y0, x1, y1``, resized to ``size x size``): float32 ``[N, 5, 2]``."""
    boxes = np.asarray(crop_boxes, np.float32)
    scale = np.stack([size / (boxes[:, 2] - boxes[:, 0]), size / (boxes[:, 3] - boxes[:, 1])], axis=1)
    return ((np.asarray(landmarks, np.float32) - boxes[:, None, :2]) * scale[:, None, :]).astype(np.float32)


def box_jitter(boxes: np.ndarray) -> float:
    """Mean absolute second difference of box centres over consecutive rows, in pixels (0 = smooth)."""
    if len(boxes) < 3:
        return 0.0
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    return float(np.abs(np.diff(centres, n=2, axis=0)).mean())


def square_boxes(boxes: np.ndarray, margin: float) -> np.ndarray:
    """Square integer regions ``[N, 4]`` centred on ``boxes [N, 4]``, side ``margin * max(w, h)``."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * margin
    side = np.maximum(np.round(side), 2).astype(np.int64)
    x0 = np.round(cx - side / 2).astype(np.int64)
    y0 = np.round(cy - side / 2).astype(np.int64)
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1)


def box_regions(boxes: np.ndarray, margin: float) -> np.ndarray:
    """Integer regions ``[N, 4]`` centred on ``boxes [N, 4]`` keeping their aspect, each side ``margin`` times
    (cut and stretched to a square crop, as detectors trained on raw face boxes expect)."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    w = np.maximum(np.round((boxes[:, 2] - boxes[:, 0]) * margin), 2).astype(np.int64)
    h = np.maximum(np.round((boxes[:, 3] - boxes[:, 1]) * margin), 2).astype(np.int64)
    x0 = np.round(cx - w / 2).astype(np.int64)
    y0 = np.round(cy - h / 2).astype(np.int64)
    return np.stack([x0, y0, x0 + w, y0 + h], axis=1)


def crop_regions(boxes: np.ndarray, margin: float, square: bool) -> np.ndarray:
    """The regions ``[N, 4]`` cut around face ``boxes [N, 4]``: :func:`square_boxes`, or :func:`box_regions` for
    stretched crops."""
    return square_boxes(boxes, margin) if square else box_regions(boxes, margin)


def region_overlap(
    region: np.ndarray, frame_shape: tuple[int, ...]
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Where the region ``(x0, y0, x1, y1)`` (which may extend past the borders) meets a frame of
    ``frame_shape (H, W, ...)``: ``(rows/cols slices in the frame, the same pixels' slices in the
    region)``, or ``None`` when they do not meet."""
    h, w = frame_shape[:2]
    x0, y0, x1, y1 = (int(v) for v in region)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 <= sx0 or sy1 <= sy0:
        return None
    return (slice(sy0, sy1), slice(sx0, sx1)), (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0))


RESAMPLING = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def crop_square(frame: np.ndarray, region: np.ndarray, size: int, resample: str = "bilinear") -> np.ndarray:
    """Cut ``region (x0, y0, x1, y1)`` from ``frame [H, W, 3]``, zero-padding outside, resize to ``size x size``
    (a non-square region is stretched) with ``resample`` (``bilinear``, ``bicubic`` or ``nearest``).

    Returns:
        uint8 ``[size, size, 3]``.
    """
    x0, y0, x1, y1 = (int(v) for v in region)
    canvas = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    overlap = region_overlap(region, frame.shape)
    if overlap is not None:
        in_frame, in_region = overlap
        canvas[in_region] = frame[in_frame]
    if canvas.shape[0] == size and canvas.shape[1] == size:
        return canvas
    return np.asarray(Image.fromarray(canvas).resize((size, size), RESAMPLING[resample]))


def smooth_boxes(frame_indices: np.ndarray, boxes: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Fill frames without a detection, then Gaussian-smooth the boxes over time.

    Rows that are not ``valid`` are interpolated linearly in frame number between the nearest valid rows
    (the nearest one past either end). Each output box is then the average of the filled boxes weighted by
    ``exp(-(f_i - f_j)^2 / 2 sigma^2)`` of their frame-number distance, cut at ``4 sigma`` (frame numbers are
    unique and sorted, so only ``ceil(4 sigma)`` neighbours each side can count: linear time and memory).

    Args:
        frame_indices: int ``[N]`` sorted unique frame numbers.
        boxes: float ``[N, 4]`` (rows where ``valid`` is False are ignored).
        valid: bool ``[N]``, at least one True.
        sigma: smoothing width in frames (0 disables smoothing; only filling happens).

    Returns:
        float32 ``[N, 4]``.
    """
    f = np.asarray(frame_indices, np.float64)
    filled = np.asarray(boxes, np.float64).copy()
    if not valid.all():
        for c in range(4):
            filled[~valid, c] = np.interp(f[~valid], f[valid], filled[valid, c])
    if sigma <= 0:
        return filled.astype(np.float32)
    n, reach = len(f), int(np.ceil(4 * sigma))
    total = np.zeros((n, 4))
    weight = np.zeros(n)
    for d in range(-reach, reach + 1):
        i = np.arange(max(0, -d), min(n, n - d))
        w = np.exp(-((f[i + d] - f[i]) ** 2) / (2 * sigma**2)) * (np.abs(f[i + d] - f[i]) <= 4 * sigma)
        total[i] += w[:, None] * filled[i + d]
        weight[i] += w
    return (total / weight[:, None]).astype(np.float32)


def nearest_valid(frame_indices: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """int ``[N]``: for every row, the row of the nearest ``valid`` frame by frame number (sorted frames,
    at least one valid; linear memory)."""
    src = np.flatnonzero(valid)
    if len(src) == 1:
        return np.full(len(frame_indices), src[0])
    fs = frame_indices[src]
    pos = np.clip(np.searchsorted(fs, frame_indices), 1, len(src) - 1)
    before, after = src[pos - 1], src[pos]
    closer_after = np.abs(frame_indices[after] - frame_indices) < np.abs(frame_indices[before] - frame_indices)
    return np.where(closer_after, after, before)


class FaceExtractor:
    """Finds, tracks and crops the main face of a video.

    Args:
        crop_size: side of the square crops in pixels.
        margin: the square crop side is ``margin`` times the larger side of the detector box.
        square: square crops (the default); ``False`` cuts the detector box itself (each side ``margin``
            times) and stretches it to ``crop_size`` (for detectors trained on such crops).
        resample: interpolation of the crops (``bilinear``, ``bicubic``, ``nearest``).
        device: ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda:0"``...
        batch_size: frames per MTCNN call; ``None`` = 32 on a GPU, 4 on the CPU (measured: larger CPU
            batches are slower, see ``forgelab bench preprocess``).
        detect_max_side: frames whose longer side exceeds this are detected at reduced resolution
            (boxes scaled back); ``None`` detects at full resolution. With MTCNN's minimum face of 20
            pixels, 480 still finds faces of 53+ pixels in 1280x720 frames and 80+ in 1920x1080.
        min_face_size: MTCNN's smallest face in pixels (at detection resolution).
        thresholds: MTCNN's three stage thresholds.
        min_score: detections below this probability are ignored.
        smoothing_sigma: Gaussian box smoothing width in frames (0 = off).
        track_iou: a face overlapping the previous frame's face by at least this IoU is followed
            instead of the largest face.
        backend: ``"batched"`` (:class:`common.mtcnn.BatchedMTCNN`) or ``"facenet"`` (facenet-pytorch's own
            ``MTCNN.detect``, which resamples candidates one at a time: the reference and the baseline of
            ``forgelab bench preprocess``).
    """

    def __init__(
        self,
        crop_size: int = 224,
        margin: float = 1.3,
        device: str = "auto",
        batch_size: int | None = None,
        square: bool = True,
        resample: str = "bilinear",
        detect_max_side: int | None = 480,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        min_score: float = 0.9,
        smoothing_sigma: float = 2.0,
        track_iou: float = 0.3,
        backend: str = "batched",
    ) -> None:
        self.crop_size = crop_size
        self.margin = margin
        self.square = square
        self.resample = resample
        self.device = resolve_device(device)
        self.batch_size = batch_size or (32 if self.device.type == "cuda" else 4)
        self.detect_max_side = detect_max_side
        self.min_face_size = min_face_size
        self.min_score = min_score
        self.smoothing_sigma = smoothing_sigma
        self.picker = FacePicker(min_score, track_iou)
        self.backend = backend
        if backend == "batched":
            from common.mtcnn import BatchedMTCNN

            self.mtcnn: Any = BatchedMTCNN(min_face_size, thresholds).to(self.device)
        elif backend == "facenet":
            from facenet_pytorch import MTCNN  # heavy import kept local to users of faces

            self.mtcnn = MTCNN(keep_all=True, min_face_size=min_face_size, thresholds=list(thresholds),
                               post_process=False, select_largest=False, device=self.device)  # fmt: skip
        else:
            raise ValueError(f"unknown face detector backend {backend!r}: batched or facenet")

    # ------------------------------------------------------------------ detection
    def _detect_scale(self, height: int, width: int) -> float:
        if self.detect_max_side is None or max(height, width) <= self.detect_max_side:
            return 1.0
        return self.detect_max_side / max(height, width)

    def shrink(self, frames: np.ndarray) -> torch.Tensor:
        """Frames at detection resolution.

        Args:
            frames: uint8 ``[B, H, W, 3]`` RGB.

        Returns:
            uint8 ``[B, h, w, 3]`` on the detector's device (antialiased resize when ``max(H, W)`` exceeds
            ``detect_max_side``; a uint8 channels-last resize on the CPU, ~10x a float one).
        """
        h, w = frames.shape[1:3]
        scale = self._detect_scale(h, w)
        batch = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        if scale == 1.0:
            return batch
        dh, dw = max(1, round(h * scale)), max(1, round(w * scale))
        x = batch.permute(0, 3, 1, 2)
        if x.device.type != "cpu":
            x = x.float()
        x = F.interpolate(x, size=(dh, dw), mode="bilinear", antialias=True, align_corners=False)
        if x.is_floating_point():
            x = x.round().clamp(0, 255).to(torch.uint8)
        return x.permute(0, 2, 3, 1).contiguous()

    def detect_shrunk(self, small: Sequence[torch.Tensor] | torch.Tensor, size: tuple[int, int]) -> list[Detections]:
        """Detect all faces in frames already at detection resolution (:meth:`shrink`).

        Args:
            small: uint8 ``[B, h, w, 3]`` (or a list of ``[h, w, 3]``).
            size: ``(width, height)`` of the full frames, to scale the boxes back.

        Returns:
            one :class:`Detections` per frame, in full-resolution coordinates.
        """
        batch = small if isinstance(small, torch.Tensor) else torch.stack(list(small))
        dh, dw = batch.shape[1:3]
        if min(dh, dw) < self.min_face_size:
            return [Detections.empty() for _ in range(len(batch))]  # MTCNN would raise: too small for any face
        sx, sy = size[0] / dw, size[1] / dh
        factor = np.array([sx, sy, sx, sy], np.float32)
        out = []
        for det in self._run_mtcnn(batch):
            out.append(Detections(det.boxes * factor, det.scores, det.landmarks * factor[:2]))
        return out

    def _run_mtcnn(self, batch: torch.Tensor) -> list[Detections]:
        if self.backend == "batched":
            return self.mtcnn(batch)
        try:
            boxes, probs, points = self.mtcnn.detect(batch, landmarks=True)
        except (RuntimeError, ValueError):  # facenet-pytorch fails on images with no usable scale
            return [Detections.empty() for _ in range(len(batch))]
        return [Detections.empty() if bx is None else
                Detections(np.asarray(bx, np.float32), np.asarray(pr, np.float32), np.asarray(pt, np.float32))
                for bx, pr, pt in zip(boxes, probs, points)]  # fmt: skip

    def detect(self, frames: np.ndarray) -> list[Detections]:
        """Detect all faces in a batch of same-size frames.

        Args:
            frames: uint8 ``[B, H, W, 3]`` RGB.

        Returns:
            one :class:`Detections` per frame, in full-resolution coordinates.
        """
        size = (frames.shape[2], frames.shape[1])
        out: list[Detections] = []
        for s in range(0, len(frames), self.batch_size):
            out.extend(self.detect_shrunk(self.shrink(frames[s : s + self.batch_size]), size))
        return out

    # ------------------------------------------------------------------ tracking
    def build_track(
        self,
        frame_indices: np.ndarray,
        detections: Sequence[Detections],
        frame_size: tuple[int, int],
        source: str,
        skipped: np.ndarray | None = None,
    ) -> FaceTrack:
        """Turn per-frame detections into a smoothed, filled :class:`FaceTrack` (no crops yet).

        ``skipped`` marks frames that were not run through the detector (their box is interpolated).
        """
        raw, lms, scores, detected = self.picker.select(detections)  # one face per frame
        if not detected.any():
            raise NoFaceError(source, f"none of {len(detections)} frames has a face with score >= {self.min_score}")
        boxes = smooth_boxes(frame_indices, np.nan_to_num(raw), detected, self.smoothing_sigma)
        if not detected.all():
            lms = np.where(detected[:, None, None], lms, lms[nearest_valid(frame_indices, detected)])
        return FaceTrack(
            frame_indices=frame_indices.astype(np.int64),
            boxes=boxes,
            raw_boxes=raw,
            landmarks=lms.astype(np.float32),
            scores=scores,
            detected=detected,
            crop_boxes=crop_regions(boxes, self.margin, self.square),
            frame_size=frame_size,
            interpolated=skipped,
        )

    # ------------------------------------------------------------------ whole videos
    def extract(
        self,
        reader: VideoReader,
        indices: Sequence[int] | None = None,
        crops: bool = True,
        crops_out: np.ndarray | None = None,
        keep_frames_mb: float = 48.0,
        progress: Callable[[int], None] | None = None,
        detect_every: int = 1,
        refine_iou: float = 0.5,
    ) -> FaceTrack:
        """Detect, track and (optionally) crop the face in the chosen frames of a video.

        Frames are decoded in chunks and only their downscaled copies since the last key frame are held
        (:class:`common.tracking.KeyframeTracker`). When all chosen frames fit in ``keep_frames_mb`` they
        are also kept for cropping, otherwise they are decoded a second time after the boxes have been
        smoothed (crops stream into ``crops_out``), so memory does not grow with the video's length.

        Args:
            reader: an open :class:`VideoReader`.
            indices: sorted frame numbers (all frames when ``None``).
            crops: whether to cut the crops.
            crops_out: optional preallocated uint8 ``[N, S, S, 3]`` array (e.g. a memory-mapped ``.npy``)
                to write the crops into.
            keep_frames_mb: memory allowed for keeping decoded frames between the two passes.
            progress: called with the number of frames just processed.
            detect_every: run the detector on every k-th frame of each run of consecutive frames (and on
                its first and last frame, and on every frame between two key frames that disagree); the
                others take boxes interpolated by the track. 1 detects every frame.
            refine_iou: key frames whose faces overlap less than this count as a lost track.

        Returns:
            the :class:`FaceTrack` (``crops`` filled when requested).

        Raises:
            NoFaceError: no frame has a face.
        """
        info = reader.info
        size = (info.width, info.height)
        count = info.num_frames if indices is None else len(indices)
        keep = crops and info.width * info.height * 3 / 2**20 * count <= keep_frames_mb
        kept: list[np.ndarray] = []
        tracker = KeyframeTracker(lambda imgs: self.detect_shrunk(imgs, size), self.picker, detect_every,
                                  refine_iou, self.batch_size)  # fmt: skip
        for i, frame in reader.iter_frames(indices):  # one full-size frame at a time
            tracker.push([i], [self.shrink(frame[None])[0]])
            if keep:
                kept.append(frame)
            if progress is not None:
                progress(1)
        frame_indices, dets, skipped = tracker.finish()
        track = self.build_track(frame_indices, dets, size, str(reader.path), skipped if detect_every > 1 else None)
        if crops:
            n = len(frame_indices)
            out = crops_out if crops_out is not None else np.empty((n, self.crop_size, self.crop_size, 3), np.uint8)
            frames = iter(kept) if keep else (f for _, f in reader.iter_frames(frame_indices.tolist()))
            for pos, frame in enumerate(frames):
                out[pos] = crop_square(frame, track.crop_boxes[pos], self.crop_size, self.resample)
            track.crops = out
        return track
