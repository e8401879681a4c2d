"""Datasets of the batch schema: clips of T frames (detectors) and (source, driving) pairs (the segmenter).

A sample is a dict: ``video`` float ``[T, 3, H, W]`` in [0, 1] RGB, ``label`` long (fake = 1), ``video_id``
str, ``frame_index`` long ``[T]`` (frame numbers in the source video) and ``failure`` str: empty, or (in
evaluation only) why this clip could not be read, e.g. a video that does not decode or has no face. Such a
clip holds zeros; evaluation scores it 0.5 and lists it, so no video is ever dropped silently.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from common.augment import ClipAugment
from common.datasets import VideoRecord
from common.errors import DatasetError, ForgelabError
from common.frames import FrameSource, to_tensor_clip
from common.selfblend import SelfBlend


# ---------------------------------------------------------------------- position sampling
def clip_positions(n: int, clip_len: int, stride: int, start: int) -> np.ndarray:
    """``clip_len`` positions from ``start`` every ``stride``, the last one repeated past the end."""
    pos = start + np.arange(clip_len) * stride
    return np.minimum(pos, n - 1).astype(np.int64)


def spread_positions(n: int, clip_len: int) -> np.ndarray:
    """``clip_len`` positions evenly spaced over ``[0, n - 1]`` (``linspace`` rounded)."""
    return np.round(np.linspace(0, n - 1, clip_len)).astype(np.int64)


def eval_starts(n: int, clip_len: int, stride: int, clips: int) -> list[int]:
    """Evenly spaced starts of ``clips`` contiguous clips covering the whole video."""
    last = max(n - (clip_len - 1) * stride - 1, 0)
    return [int(round(s)) for s in np.linspace(0, last, clips)] if clips > 1 else [last // 2]


def contiguous_starts(numbers: np.ndarray, span: int) -> np.ndarray:
    """Positions where ``span`` consecutive source frames are available (a cache may hold several windows).

    A video shorter than ``span`` gives ``[0]`` (its clips repeat the last frame); a longer one whose
    available runs are all shorter than ``span`` gives an empty array (a clip would jump over a gap).
    """
    n = len(numbers)
    if n < span:
        return np.zeros(1, np.int64)
    return np.flatnonzero(numbers[span - 1 :] - numbers[: n - span + 1] == span - 1)


def longest_run(numbers: np.ndarray) -> int:
    """Length of the longest run of consecutive frame numbers."""
    if len(numbers) == 0:
        return 0
    breaks = np.flatnonzero(np.diff(numbers) != 1)
    edges = np.r_[-1, breaks, len(numbers) - 1]
    return int(np.diff(edges).max())


# ---------------------------------------------------------------------- samples
def make_items(
    frames: np.ndarray,
    frame_index: np.ndarray,
    record: VideoRecord,
    size: int | None,
    augment: ClipAugment | None,
    rng: np.random.Generator,
    landmarks: np.ndarray | None = None,
    self_blend: SelfBlend | None = None,
    keep_base: bool = False,
) -> list[dict[str, Any]]:
    """Samples from decoded frames: the clip, or its self-blended pseudo-fake (label 1, ``video_id`` suffixed
    ``#selfblend``), preceded by the real clip it was blended from when ``keep_base``. Every returned clip gets
    the same augmentation."""
    video = to_tensor_clip(frames, size)
    index = torch.as_tensor(frame_index, dtype=torch.long)
    clips = [(video, record.label, record.video_id)]
    if self_blend is not None:
        if landmarks is None:
            raise DatasetError(record.path, "self-blending needs face landmarks: use a cache or faces_on_the_fly")
        fake, _, base = self_blend(video, landmarks * (video.shape[-1] / frames.shape[2]), rng)
        clips = [(base, record.label, record.video_id)] if keep_base else []
        clips.append((fake, 1, f"{record.video_id}#selfblend"))
    params = augment.sample(rng) if augment is not None else None
    if params is not None and params["time_flip"]:
        index = index.flip(0)
    return [
        {
            "video": augment.apply(v, params) if augment is not None and params is not None else v,
            "label": torch.tensor(label, dtype=torch.long),
            "video_id": video_id,
            "frame_index": index,
            "failure": "",
        }
        for v, label, video_id in clips
    ]


def failed_item(
    record: VideoRecord, clip_len: int, size: int | None, reason: str, video_id: str = "", label: int | None = None
) -> dict[str, Any]:
    """A placeholder sample for a clip that could not be read (zeros; ``failure`` says why)."""
    s = size or 1
    return {
        "video": torch.zeros(clip_len, 3, s, s),
        "label": torch.tensor(record.label if label is None else label, dtype=torch.long),
        "video_id": video_id or record.video_id,
        "frame_index": torch.full((clip_len,), -1, dtype=torch.long),
        "failure": reason,
    }


def collate_clips(items: Sequence[dict[str, Any] | list[dict[str, Any]]]) -> dict[str, Any]:
    """``default_collate`` after flattening items that hold several samples (paired self-blending)."""
    flat = [s for item in items for s in (item if isinstance(item, list) else [item])]
    return default_collate(flat)


# ---------------------------------------------------------------------- datasets
class ClipDataset(Dataset):
    """Clips of T frames, one item per (video, clip) pair.

    Args:
        records: the videos.
        source: where frames come from.
        clip_len: T.
        frame_stride: step between frames of a contiguous clip.
        clip_sampling: ``"contiguous"`` or ``"spread"``.
        train: random starts + augmentation when True; fixed, evenly spaced clips otherwise.
        clips_per_video: clips per video in evaluation (training draws one per video per repeat).
        size: output side in pixels (``None`` keeps the source size).
        augment: clip augmentation (training only).
        seed: base seed for the deterministic evaluation sampling.
        repeats: training: clips drawn per video per epoch.
        self_blend: turn real clips into self-blended pseudo-fakes (label 1, ``video_id`` suffixed
            ``#selfblend``): in training at random with ``fake_prob`` (or, ``paired``, every real clip
            next to its pseudo-fake, so an item then holds two samples), every other clip in evaluation.

    Evaluation never raises for one bad video: its clips become :func:`failed_item`\\ s.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        source: FrameSource,
        clip_len: int,
        frame_stride: int = 1,
        clip_sampling: Literal["contiguous", "spread"] = "contiguous",
        train: bool = True,
        clips_per_video: int = 1,
        size: int | None = 224,
        augment: ClipAugment | None = None,
        seed: int = 0,
        repeats: int = 1,
        self_blend: SelfBlend | None = None,
    ) -> None:
        self.records = list(records)
        self.source = source
        self.clip_len = clip_len
        self.frame_stride = frame_stride
        self.clip_sampling = clip_sampling
        self.train = train
        self.clips = repeats if train else (1 if clip_sampling == "spread" and not self_blend else clips_per_video)
        self.size = size
        self.augment = augment
        self.seed = seed
        self.self_blend = self_blend

    def __len__(self) -> int:
        return len(self.records) * self.clips

    def _record(self, index: int) -> VideoRecord:
        return self.records[index // self.clips]

    def labels(self) -> list[int]:
        """Label of each item before self-blending (for class-balanced sampling)."""
        return [r.label for r in self.records for _ in range(self.clips)]

    def _rng(self, index: int) -> np.random.Generator:
        if self.train:
            return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        return np.random.default_rng([self.seed, index])

    def positions(self, record: VideoRecord, clip: int, rng: np.random.Generator) -> np.ndarray:
        """Frame positions of one clip of ``record``; a clip never spans a gap between cached windows."""
        numbers = self.source.numbers(record)
        n = len(numbers)
        if n == 0:
            raise DatasetError(record.path, "no frames available for this video")
        if self.clip_sampling == "spread":
            return spread_positions(n, self.clip_len)
        span = (self.clip_len - 1) * self.frame_stride + 1
        starts = contiguous_starts(numbers, span)
        if len(starts) == 0:
            longest = longest_run(numbers)
            raise DatasetError(record.path, f"a clip of {self.clip_len} frames (stride {self.frame_stride}) spans "
                               f"{span} consecutive frames, but the longest run available is {longest}: cache "
                               f"windows of at least {span} frames (cache_frames windows:K:{span} or all)")  # fmt: skip
        if self.train:
            start = int(rng.choice(starts))
        else:
            start = int(starts[int(round(np.linspace(0, len(starts) - 1, self.clips)[clip]))])
        return clip_positions(n, self.clip_len, self.frame_stride, start)

    def _blend(self, record: VideoRecord, index: int, rng: np.random.Generator) -> bool:
        if self.self_blend is None or record.label != 0:
            return False
        return bool(rng.random() < self.self_blend.fake_prob) if self.train else index % 2 == 1

    def __getitem__(self, index: int) -> dict[str, Any] | list[dict[str, Any]]:
        record = self._record(index)
        rng = self._rng(index)
        paired = self.train and self.self_blend is not None and self.self_blend.paired and record.label == 0
        blend = self.self_blend if paired or self._blend(record, index, rng) else None
        augment = self.augment if self.train else None
        try:
            frames, frame_index, landmarks = self.source.read(record, self.positions(record, index % self.clips, rng))
            items = make_items(frames, frame_index, record, self.size, augment, rng, landmarks, blend, paired)
        except ForgelabError as exc:
            if self.train:
                raise
            if blend is None:
                return failed_item(record, self.clip_len, self.size, str(exc))
            return failed_item(record, self.clip_len, self.size, str(exc), f"{record.video_id}#selfblend", label=1)
        return items if paired else items[0]


class PairDataset(Dataset):
    """Pairs (source, driving) of frames of one video: the segmenter's self-supervision.

    Args:
        records: the videos.
        source: where frames come from.
        train: random pairs + augmentation when True; fixed pairs otherwise.
        id_sampling: one item per identity (``record.group``), a random video of it each time.
        repeats: the dataset is repeated this many times per epoch (the original's ``num_repeats``).
        size: output side in pixels.
        augment: pair augmentation (training only).
        seed: base seed for deterministic evaluation pairs.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        source: FrameSource,
        train: bool = True,
        id_sampling: bool = True,
        repeats: int = 1,
        size: int | None = 256,
        augment: ClipAugment | None = None,
        seed: int = 0,
    ) -> None:
        self.records = list(records)
        self.source = source
        self.train = train
        self.size = size
        self.augment = augment
        self.seed = seed
        self.repeats = repeats
        by_group: dict[str, list[VideoRecord]] = defaultdict(list)
        for r in self.records:
            by_group[r.group].append(r)
        self.units = [by_group[g] for g in sorted(by_group)] if id_sampling else [[r] for r in self.records]

    def __len__(self) -> int:
        return len(self.units) * self.repeats

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        else:
            rng = np.random.default_rng([self.seed, index])
        unit = self.units[index % len(self.units)]
        record = unit[int(rng.integers(len(unit)))]
        n = self.source.length(record)
        positions = np.sort(rng.choice(n, size=2, replace=n < 2)).astype(np.int64)
        frames, frame_index, _ = self.source.read(record, positions)
        return make_items(frames, frame_index, record, self.size, self.augment if self.train else None, rng)[0]
