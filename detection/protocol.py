"""One evaluation protocol for every detector: the clips of a dataset split, cut as each detector's input spec
asks, scored, timed and summarised (``forgelab evaluate`` runs one detector through it, ``forgelab compare``
several)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from common.datasets import DatasetIndex
from common.errors import ConfigError
from detection.evaluation import ClipScores, score_batch
from detection.loading import LoadedDetector


@dataclass(frozen=True)
class Protocol:
    """What every detector is scored on.

    Attributes:
        index: the dataset.
        split: ``train``, ``val`` or ``test``.
        clips: clips per video.
        frames: frames per clip (``None``: each detector's own).
        cache: a face-crop cache (``None``: faces detected on the fly).
        self_blend: add self-blended pseudo-fakes of the real videos (every other evaluation clip).
        max_videos: at most this many videos, classes in turn.
        batch_size: clips per detector call.
    """

    index: DatasetIndex
    split: str = "test"
    clips: int = 4
    frames: int | None = None
    cache: Path | None = None
    self_blend: bool = False
    max_videos: int | None = None
    batch_size: int = 8


@dataclass
class SplitScores:
    """A detector's clip scores on a protocol and what they cost.

    Attributes:
        clips: the scores, labels, video ids and failures.
        frames_per_clip: T of the clips scored.
        frames_scored: frames that went through the detector.
        detector_seconds: time in the detector's forward passes (crops read or cut not counted).
        dataset_hash: the data module's hash of the split lists.
    """

    clips: ClipScores
    frames_per_clip: int
    frames_scored: int
    detector_seconds: float
    dataset_hash: str

    @property
    def frames_per_s(self) -> float:
        """Inference frames per second (0 when nothing was scored)."""
        return self.frames_scored / self.detector_seconds if self.detector_seconds > 0 else 0.0


def score_split(detector: LoadedDetector, protocol: Protocol, progress: bool = True) -> SplitScores:
    """Score every clip of the protocol's split with one detector.

    Raises:
        ConfigError: the split is empty.
    """
    from tqdm import tqdm

    from common.data import VideoDataModule
    from common.selfblend import SelfBlend
    from detection.evaluation import readable

    spec = detector.spec
    dm = VideoDataModule(protocol.index, cache_dir=str(protocol.cache) if protocol.cache else None, mode="clip",
                         clip_len=protocol.frames or spec.frames, frame_stride=spec.stride, eval_clips=protocol.clips,
                         size=spec.size, margin=spec.margin, square=spec.square, resample=spec.resize,
                         batch_size=protocol.batch_size, num_workers=0, faces_on_the_fly=protocol.cache is None,
                         max_videos=protocol.max_videos,
                         self_blend=SelfBlend() if protocol.self_blend else None)  # fmt: skip
    dm.setup("test")
    if not dm.records[protocol.split]:
        raise ConfigError(f"the {protocol.split} split of this dataset is empty")
    clips, frames, seconds = ClipScores(), 0, 0.0
    for batch in tqdm(dm.dataloader(protocol.split), desc="evaluate", unit="batch", disable=not progress):
        start = time.perf_counter()
        clips.add(score_batch(detector.module, batch, detector.device), batch)
        seconds += time.perf_counter() - start
        frames += len(readable(batch)) * dm.clip_len
    return SplitScores(clips, dm.clip_len, frames, seconds, dm.dataset_hash)
