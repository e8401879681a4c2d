"""The one ``VideoDataModule`` both systems train on.

Batches follow DESIGN.md: a dict with ``video`` float ``[B, T, 3, H, W]`` in [0, 1] RGB, ``label`` long
``[B]`` (fake = 1), ``video_id`` list[str] and ``frame_index`` long ``[B, T]`` (frame numbers in the
source video). Two sampling modes:

* ``clip``: T frames of one video. Training takes T contiguous frames (every ``frame_stride``-th) from a
  random start; evaluation takes ``eval_clips`` such clips at evenly spaced starts. With
  ``clip_sampling="spread"`` a clip is instead T frames evenly spaced over the whole video.
* ``pair``: T = 2 frames (source, driving) of one video, for the motion co-segmentation generator; with
  ``id_sampling`` an epoch visits every identity once (then a random video of it), as the original.

Frames come from a face-crop cache made by ``forgelab preprocess`` or, without one, are decoded on the
fly (full frames resized, as for the pre-cropped VoxCeleb layout, or face-cropped when
``faces_on_the_fly``).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from common import cache as cache_mod
from common.augment import ClipAugment
from common.datasets import DatasetIndex, VideoRecord, index_hash
from common.errors import ConfigError, DatasetError
from common.selfblend import SelfBlend
from common.video import VideoReader

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- frame sources
class FrameSource:
    """Where a dataset's frames come from: ``numbers`` and ``read`` take a record."""

    def numbers(self, record: VideoRecord) -> np.ndarray:
        """Source frame numbers of the available frames (position i -> frame number), int64 ``[N]``."""
        raise NotImplementedError

    def length(self, record: VideoRecord) -> int:
        """Number of frames available for the record."""
        return len(self.numbers(record))

    def read(self, record: VideoRecord, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Frames at ``positions`` (0-based among the available ones).

        Returns:
            ``(uint8 [T, H, W, 3] RGB, int64 [T] source frame numbers, float32 [T, 5, 2] face landmarks in
            the returned frames' pixel coordinates, or None when unknown)``.
        """
        raise NotImplementedError


class CacheSource(FrameSource):
    """Face crops from a cache folder (memory-mapped, opened lazily in each worker)."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self._open: dict[str, cache_mod.CacheEntry] = {}

    def has(self, record: VideoRecord) -> bool:
        return cache_mod.is_done(self.cache, record.video_id)

    def _entry(self, record: VideoRecord) -> cache_mod.CacheEntry:
        entry = self._open.get(record.video_id)
        if entry is None:
            entry = self._open[record.video_id] = cache_mod.read_entry(self.cache, record.video_id)
        return entry

    def _rows(self, record: VideoRecord) -> np.ndarray:
        """Rows of the entry's crops inside the record's frame range."""
        idx = self._entry(record).frame_indices
        if record.frames is None:
            return np.arange(len(idx))
        return np.flatnonzero((idx >= record.frames[0]) & (idx < record.frames[1]))

    def numbers(self, record: VideoRecord) -> np.ndarray:
        return self._entry(record).frame_indices[self._rows(record)]

    def read(self, record: VideoRecord, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        entry = self._entry(record)
        rows = self._rows(record)[positions]
        return np.asarray(entry.crops[rows]), entry.frame_indices[rows], entry.crop_landmarks[rows]

    def __getstate__(self) -> dict[str, Any]:  # memmaps are reopened in each worker
        return {"cache": self.cache, "_open": {}}


class DecodeSource(FrameSource):
    """Frames decoded from the video on demand; optionally face-cropped with a per-clip face track."""

    def __init__(self, faces_on_the_fly: bool = False, crop_size: int = 224, margin: float = 1.3) -> None:
        self.faces_on_the_fly = faces_on_the_fly
        self.crop_size = crop_size
        self.margin = margin
        self._lengths: dict[str, int] = {}
        self._extractor = None

    def numbers(self, record: VideoRecord) -> np.ndarray:
        n = self._lengths.get(record.video_id)
        if n is None:
            with VideoReader(record.path) as r:
                n = r.info.num_frames
            if record.frames is not None:
                n = max(0, min(record.frames[1], n) - record.frames[0])
            self._lengths[record.video_id] = n
        return np.arange(n, dtype=np.int64) + (record.frames[0] if record.frames is not None else 0)

    def read(self, record: VideoRecord, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        numbers = self.numbers(record)[positions]
        with VideoReader(record.path) as reader:
            frames = reader.read(numbers.tolist())
        if not self.faces_on_the_fly:
            return frames, numbers, None
        if self._extractor is None:
            from common.faces import FaceExtractor

            self._extractor = FaceExtractor(crop_size=self.crop_size, margin=self.margin, device="cpu")
        from common.faces import crop_square

        dets = self._extractor.detect(frames)
        track = self._extractor.build_track(numbers, dets, (frames.shape[2], frames.shape[1]), record.path)
        crops = np.stack([crop_square(f, b, self.crop_size) for f, b in zip(frames, track.crop_boxes)])
        return crops, numbers, track.crop_landmarks(self.crop_size)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_extractor"] = None
        return state


def to_tensor_clip(frames: np.ndarray, size: int | None) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float ``[T, 3, size, size]`` in [0, 1] (antialiased resize)."""
    frames = np.ascontiguousarray(frames)
    if not frames.flags.writeable:  # e.g. an array viewing a PIL image: torch wants writable memory
        frames = frames.copy()
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255)
    if size is not None and (video.shape[-1] != size or video.shape[-2] != size):
        video = F.interpolate(video, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return video.clamp_(0, 1)


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

    Falls back to every position when no window is long enough (clips are then padded).
    """
    n = len(numbers)
    if n >= span:
        ok = numbers[span - 1 :] - numbers[: n - span + 1] == span - 1
        starts = np.flatnonzero(ok)
        if len(starts):
            return starts
    return np.arange(max(n - span + 1, 1))


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
            ``#selfblend``): at random with ``fake_prob`` in training, every other clip in evaluation.
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
        """Frame positions of one clip of ``record``."""
        numbers = self.source.numbers(record)
        n = len(numbers)
        if self.clip_sampling == "spread":
            return spread_positions(n, self.clip_len)
        span = (self.clip_len - 1) * self.frame_stride + 1
        starts = contiguous_starts(numbers, span)
        if self.train:
            start = int(rng.choice(starts))
        else:
            start = int(starts[int(round(np.linspace(0, len(starts) - 1, self.clips)[clip]))])
        return clip_positions(n, self.clip_len, self.frame_stride, start)

    def _blend(self, record: VideoRecord, index: int, rng: np.random.Generator) -> bool:
        if self.self_blend is None or record.label != 0:
            return False
        return bool(rng.random() < self.self_blend.fake_prob) if self.train else index % 2 == 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self._record(index)
        rng = self._rng(index)
        frames, frame_index, landmarks = self.source.read(record, self.positions(record, index % self.clips, rng))
        blend = self.self_blend if self._blend(record, index, rng) else None
        if blend is not None and landmarks is None:
            raise DatasetError(record.path, "self-blending needs face landmarks: use a cache or faces_on_the_fly")
        return make_item(frames, frame_index, record, self.size, self.augment if self.train else None, rng,
                         landmarks, blend)  # fmt: skip


class PairDataset(Dataset):
    """Pairs (source, driving) of frames of one video: the generator's self-supervision.

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
        return make_item(frames, frame_index, record, self.size, self.augment if self.train else None, rng)


def make_item(
    frames: np.ndarray,
    frame_index: np.ndarray,
    record: VideoRecord,
    size: int | None,
    augment: ClipAugment | None,
    rng: np.random.Generator,
    landmarks: np.ndarray | None = None,
    self_blend: SelfBlend | None = None,
) -> dict[str, Any]:
    """One sample of the batch schema from decoded frames (self-blended into a pseudo-fake on request)."""
    video = to_tensor_clip(frames, size)
    index = torch.as_tensor(frame_index, dtype=torch.long)
    label, video_id = record.label, record.video_id
    if self_blend is not None and landmarks is not None:
        scaled = landmarks * (video.shape[-1] / frames.shape[2])
        video, _ = self_blend(video, scaled, rng)
        label, video_id = 1, f"{record.video_id}#selfblend"
    if augment is not None:
        video, params = augment(video, rng)
        if params["time_flip"]:
            index = index.flip(0)
    return {
        "video": video,
        "label": torch.tensor(label, dtype=torch.long),
        "video_id": video_id,
        "frame_index": index,
    }


# ---------------------------------------------------------------------- data module
class VideoDataModule(pl.LightningDataModule):
    """Train/val/test loaders over a dataset index, shared by the detector and the generator.

    Args:
        index: the dataset layout (``FolderIndex``, ``CsvIndex``, ``CelebDFIndex``,
            ``FaceForensicsIndex``, ``VoxIndex``, ``SingleVideoIndex``).
        cache_dir: face-crop cache made by ``forgelab preprocess``; videos missing from it are left
            out (and counted in the log). ``None`` decodes videos on the fly.
        mode: ``"clip"`` (detector) or ``"pair"`` (generator).
        clip_len: frames per clip (``clip`` mode).
        frame_stride: step between frames of a contiguous clip.
        clip_sampling: ``"contiguous"`` or ``"spread"`` (evenly spaced over the whole video).
        eval_clips: clips per video (``pair`` mode: pairs per identity) in validation/test.
        size: output side in pixels.
        batch_size: samples per batch (per device under DDP).
        num_workers: loader processes.
        augment: training augmentation (``None`` = none).
        balanced: draw training samples with class-balanced weights.
        id_sampling: ``pair`` mode: one sample per identity per repeat.
        repeats: training samples per video (``clip``) or per identity (``pair``) per epoch.
        faces_on_the_fly: without a cache, detect and crop faces while loading (slow; CPU).
        margin: face crop margin (``faces_on_the_fly`` and ``build_cache``).
        max_videos: keep at most this many videos per split (quick experiments, tests).
        self_blend: ``clip`` mode: turn real clips into self-blended pseudo-fakes (needs landmarks:
            a cache, or ``faces_on_the_fly``); lets a detector train from real videos only.
        build_cache: before training, extract the face crops of every video into ``cache_dir``
            (``forgelab preprocess`` with crop size ``size`` and ``margin``; resumable, so finished videos
            are skipped; runs once per machine under DDP).
        cache_frames: the frames to cache (``all``, ``even:N``, ``first:N``, ``windows:K:L``).
        seed: seed of the deterministic evaluation sampling.
    """

    def __init__(
        self,
        index: DatasetIndex,
        cache_dir: str | None = None,
        mode: Literal["clip", "pair"] = "clip",
        clip_len: int = 20,
        frame_stride: int = 1,
        clip_sampling: Literal["contiguous", "spread"] = "contiguous",
        eval_clips: int = 4,
        size: int = 224,
        batch_size: int = 4,
        num_workers: int = 2,
        augment: ClipAugment | None = None,
        balanced: bool = False,
        id_sampling: bool = True,
        repeats: int = 1,
        faces_on_the_fly: bool = False,
        margin: float = 1.3,
        max_videos: int | None = None,
        self_blend: SelfBlend | None = None,
        build_cache: bool = False,
        cache_frames: str = "all",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mode not in ("clip", "pair"):
            raise ConfigError(f"mode must be clip or pair, not {mode!r}")
        if clip_sampling not in ("contiguous", "spread"):
            raise ConfigError(f"clip_sampling must be contiguous or spread, not {clip_sampling!r}")
        self.index = index
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.mode = mode
        self.clip_len = 2 if mode == "pair" else clip_len
        self.frame_stride = frame_stride
        self.clip_sampling = clip_sampling
        self.eval_clips = eval_clips
        self.size = size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augment = augment
        self.balanced = balanced
        self.id_sampling = id_sampling
        self.repeats = repeats
        self.faces_on_the_fly = faces_on_the_fly
        self.margin = margin
        self.max_videos = max_videos
        self.self_blend = self_blend
        self.build_cache = build_cache
        self.cache_frames = cache_frames
        self.seed = seed
        self.records: dict[str, list[VideoRecord]] = {}
        self.dataset_hash = ""

    def _source(self) -> FrameSource:
        if self.cache_dir is not None:
            if not self.cache_dir.is_dir():
                raise DatasetError(self.cache_dir, "cache folder does not exist (run forgelab preprocess)")
            return CacheSource(self.cache_dir)
        return DecodeSource(self.faces_on_the_fly, self.size, self.margin)

    def prepare_data(self) -> None:
        """Build the face-crop cache when asked (Lightning calls this on one process per machine)."""
        if not (self.build_cache and self.cache_dir):
            return
        from common.preprocess import PreprocessConfig, run_preprocess

        config = PreprocessConfig(frames=self.cache_frames, crop_size=self.size, margin=self.margin)
        summary = run_preprocess(self.index.records(), self.cache_dir, config)
        log.warning("face cache %s: %d new, %d already done, %d failed", self.cache_dir, summary["ok"],
                    summary["skipped"], summary["failed"])  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        """Index the dataset once (deterministic, so every DDP rank gets the same records)."""
        if self.records:
            return
        records = self.index.records()
        self.dataset_hash = index_hash(records)
        self.source = self._source()
        if isinstance(self.source, CacheSource):
            have = [r for r in records if self.source.has(r)]
            if len(have) < len(records):
                log.warning("%d of %d videos have no cache entry and are left out", len(records) - len(have),
                            len(records))  # fmt: skip
            records = have
        for split in ("train", "val", "test"):
            recs = [r for r in records if r.split == split]
            self.records[split] = recs[: self.max_videos] if self.max_videos else recs
        if not self.records["train"] and stage in (None, "fit"):
            raise DatasetError(getattr(self.index, "root", "dataset"), "no training videos")

    def dataset(self, split: str) -> Dataset:
        """The dataset of one split."""
        train = split == "train"
        recs = self.records[split]
        aug = self.augment if train else None
        if self.mode == "pair":
            return PairDataset(recs, self.source, train, self.id_sampling, self.repeats if train else self.eval_clips,
                               self.size, aug, self.seed)  # fmt: skip
        return ClipDataset(recs, self.source, self.clip_len, self.frame_stride, self.clip_sampling, train,
                           self.eval_clips, self.size, aug, self.seed, self.repeats, self.self_blend)  # fmt: skip

    def _loader(self, split: str) -> DataLoader:
        ds = self.dataset(split)
        sampler = None
        if split == "train" and self.balanced and isinstance(ds, ClipDataset):
            labels = ds.labels()
            counts = Counter(labels)
            weights = torch.tensor([1.0 / counts[y] for y in labels], dtype=torch.double)
            sampler = WeightedRandomSampler(weights, num_samples=len(labels), replacement=True)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=split == "train" and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=split == "train" and len(ds) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def label_counts(self) -> dict[str, dict[int, int]]:
        """Videos per label in each split (for logging)."""
        return {s: dict(Counter(r.label for r in recs)) for s, recs in self.records.items()}
