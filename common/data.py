"""The one ``VideoDataModule`` both systems train on.

Batches follow DESIGN.md: a dict with ``video`` float ``[B, T, 3, H, W]`` in [0, 1] RGB, ``label`` long
``[B]`` (fake = 1), ``video_id`` list[str], ``frame_index`` long ``[B, T]`` (frame numbers in the source
video) and ``failure`` list[str] (evaluation only: why a clip could not be read, see :mod:`common.clips`).
Two sampling modes:

* ``clip``: T frames of one video. Training takes T contiguous frames (every ``frame_stride``-th) from a
  random start; evaluation takes ``eval_clips`` such clips at evenly spaced starts. With
  ``clip_sampling="spread"`` a clip is instead T frames evenly spaced over the whole video.
* ``pair``: T = 2 frames (source, driving) of one video, for the motion co-segmentation segmenter; with
  ``id_sampling`` an epoch visits every identity once (then a random video of it), as the original.

Frames come from a face-crop cache (:mod:`common.cache`, built by ``forgelab preprocess`` or by
``build_cache``) or, without one, are decoded on the fly (full frames resized, as for the pre-cropped
VoxCeleb layout, or face-cropped when ``faces_on_the_fly``).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from common.augment import ClipAugment
from common.clips import ClipDataset, PairDataset, collate_clips
from common.datasets import DatasetIndex, VideoRecord, index_hash
from common.errors import ConfigError, DatasetError
from common.frames import CacheSource, DecodeSource, FrameSource
from common.selfblend import SelfBlend

log = logging.getLogger(__name__)


def balanced_head(records: list[VideoRecord], n: int) -> list[VideoRecord]:
    """At most ``n`` records, taking the classes in turn (in index order within each class)."""
    by_label: dict[int, list[VideoRecord]] = defaultdict(list)
    for r in records:
        by_label[r.label].append(r)
    queues = [by_label[k] for k in sorted(by_label)]
    out: list[VideoRecord] = []
    depth = 0
    while len(out) < min(n, len(records)):
        for q in queues:
            if depth < len(q) and len(out) < n:
                out.append(q[depth])
        depth += 1
    keep = {id(r) for r in out}
    return [r for r in records if id(r) in keep]


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
        margin: face crop side / face box side (``faces_on_the_fly`` and ``build_cache``).
        square: square face crops (else the face box itself, stretched to ``size``).
        resample: interpolation of the face crops (``bilinear``, ``bicubic``, ``nearest``).
        max_videos: keep at most this many videos per split, both classes in turn (quick runs, tests).
        self_blend: ``clip`` mode: turn real clips into self-blended pseudo-fakes (needs landmarks:
            a cache, or ``faces_on_the_fly``); lets a detector train from real videos only. With
            ``paired`` self-blending a real training item yields two clips (the real one and its
            pseudo-fake), so a batch holds up to ``2 * batch_size`` clips.
        build_cache: before training, extract the face crops of every video into ``cache_dir``
            (the preprocessing of ``forgelab preprocess`` with crop size ``size`` and ``margin``; resumable,
            so finished videos are skipped; runs once per machine under DDP).
        cache_frames: the frames to cache: ``all``, ``even:N``, ``first:N``, ``windows:K:L`` (K runs of L
            consecutive frames) or ``windows:K`` (runs exactly as long as one clip spans).
        seed: seed of the deterministic evaluation sampling.
        fixed_crop: ``faces_on_the_fly``: one square region per sample covering the face in all its frames (the
            face moves inside it, as in VoxCeleb's crops), instead of a crop following the face.

    Training uses the videos that have a cache entry (the others are counted in the log); in ``clip`` mode
    validation and test keep every video, and one that cannot be read scores 0.5 and is listed by the
    evaluation.
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
        square: bool = True,
        resample: str = "bilinear",
        max_videos: int | None = None,
        self_blend: SelfBlend | None = None,
        build_cache: bool = False,
        cache_frames: str = "all",
        seed: int = 0,
        fixed_crop: bool = False,
    ) -> None:
        super().__init__()
        if mode not in ("clip", "pair"):
            raise ConfigError(f"mode must be clip or pair, not {mode!r}")
        if clip_sampling not in ("contiguous", "spread"):
            raise ConfigError(f"clip_sampling must be contiguous or spread, not {clip_sampling!r}")
        if clip_len < 1 or frame_stride < 1 or eval_clips < 1 or size < 8 or batch_size < 1:
            raise ConfigError("clip_len, frame_stride, eval_clips and batch_size must be >= 1 and size >= 8")
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
        self.fixed_crop = fixed_crop
        self.square = square
        self.resample = resample
        self.max_videos = max_videos
        self.self_blend = self_blend
        self.build_cache = build_cache
        self.cache_frames = cache_frames
        self.seed = seed
        self.records: dict[str, list[VideoRecord]] = {}
        self.dataset_hash = ""

    @property
    def span(self) -> int:
        """Consecutive source frames one contiguous clip covers."""
        return (self.clip_len - 1) * self.frame_stride + 1

    def resolved_cache_frames(self) -> str:
        """``cache_frames`` with ``windows:K`` completed to ``windows:K:<span>``."""
        parts = self.cache_frames.split(":")
        if parts[0] == "windows" and len(parts) == 2:
            return f"windows:{parts[1]}:{self.span}"
        return self.cache_frames

    def _source(self) -> FrameSource:
        if self.cache_dir is not None:
            if not self.cache_dir.is_dir():
                raise DatasetError(self.cache_dir, "cache folder does not exist (run forgelab preprocess)")
            return CacheSource(self.cache_dir)
        return DecodeSource(self.faces_on_the_fly, self.size, self.margin, self.square, self.resample, self.fixed_crop)

    def prepare_data(self) -> None:
        """Build the face-crop cache when asked (Lightning calls this on one process per machine)."""
        if not (self.build_cache and self.cache_dir):
            return
        from common.preprocess import PreprocessConfig, run_preprocess

        config = PreprocessConfig(frames=self.resolved_cache_frames(), crop_size=self.size, margin=self.margin,
                                  square=self.square, resample=self.resample)  # fmt: skip
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
        for split in ("train", "val", "test"):
            recs = [r for r in records if r.split == split]
            if (split == "train" or self.mode == "pair") and isinstance(self.source, CacheSource):
                have = [r for r in recs if self.source.has(r)]
                if len(have) < len(recs):
                    log.warning("%d of %d %s videos have no cache entry and are left out",
                                len(recs) - len(have), len(recs), split)  # fmt: skip
                recs = have
            self.records[split] = balanced_head(recs, self.max_videos) if self.max_videos else recs
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

    def dataloader(self, split: str) -> DataLoader:
        """The loader of one split (shuffled and class-balanced on request for ``train``)."""
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
            collate_fn=collate_clips,
        )

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train")

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")
