"""Turn a dataset into a face-crop cache (:mod:`common.cache`), resumably, in parallel, in shards.

The library behind ``forgelab preprocess`` and ``VideoDataModule(build_cache=True)``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common import cache as cache_mod
from common.datasets import VideoRecord
from common.errors import ForgelabError
from common.faces import FaceExtractor
from common.video import VideoReader, sample_indices


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of one preprocessing run (also stored in the cache's ``cache_config.json``)."""

    frames: str = "even:32"
    crop_size: int = 224
    margin: float = 1.3
    square: bool = True
    resample: str = "bilinear"
    device: str = "auto"
    batch_size: int | None = None
    detect_max_side: int | None = 480
    detect_every: int = 1  # the face detector on every k-th frame of each run, the others interpolated

    def cache_fields(self) -> dict[str, Any]:
        """The settings that change the cache's content."""
        fields = {"frames": self.frames, "crop_size": self.crop_size, "margin": self.margin, "square": self.square,
                  "resample": self.resample}  # fmt: skip
        if self.detect_every != 1:  # caches written before the option existed keep their tag
            fields["detect_every"] = self.detect_every
        return fields

    def extractor(self) -> FaceExtractor:
        return FaceExtractor(
            crop_size=self.crop_size,
            margin=self.margin,
            square=self.square,
            resample=self.resample,
            device=self.device,
            batch_size=self.batch_size,
            detect_max_side=self.detect_max_side,
        )


@dataclass
class Outcome:
    """What happened to one video."""

    video_id: str
    path: str
    status: str  # "ok" | "failed" | "skipped" (another run owns it)
    frames: int = 0
    reason: str = ""


def in_shard(video_id: str, shard: tuple[int, int]) -> bool:
    """Stable assignment of a video to shard ``i`` of ``n`` (by a hash of its id)."""
    i, n = shard
    return int(hashlib.sha1(video_id.encode()).hexdigest(), 16) % n == i


def process_video(record: VideoRecord, cache: Path, extractor: FaceExtractor, frames: str, tag: str,
                  detect_every: int = 1) -> Outcome:  # fmt: skip
    """Extract one video's faces into its cache entry (atomically). Never raises for bad input; a video that
    another run on the same cache is writing (or has just written) is skipped."""
    with cache_mod.entry_lock(cache, record.video_id) as owned:
        if not owned or cache_mod.is_done(cache, record.video_id):
            return Outcome(record.video_id, record.path, "skipped", 0, "written by another run")
        return _process_owned(record, cache, extractor, frames, tag, detect_every)


def _process_owned(record: VideoRecord, cache: Path, extractor: FaceExtractor, frames: str, tag: str,
                   detect_every: int) -> Outcome:  # fmt: skip
    writer = None
    try:
        with VideoReader(record.path) as reader:
            indices = sample_indices(reader.info.num_frames, frames)
            writer = cache_mod.EntryWriter(cache, record.video_id, tag)
            crops = writer.crops(len(indices), extractor.crop_size)
            track = extractor.extract(reader, indices, crops=True, crops_out=crops, detect_every=detect_every)
            crops.flush()
            del crops
            info = reader.info
        writer.commit(entry_meta(record, info, extractor.crop_size, extractor.margin, frames, track))
        return Outcome(record.video_id, record.path, "ok", len(indices))
    except Exception as exc:  # one bad video must never abort the run
        reason = failure_reason(exc)
    if writer is not None:
        writer.abort()
    return Outcome(record.video_id, record.path, "failed", 0, reason)


def entry_meta(record: VideoRecord, info: Any, crop_size: int, margin: float, frames: str, track: Any) -> dict:
    """A cache entry's ``meta.json``: the record, the video's :class:`~common.video.VideoInfo`, the crop settings
    and the :class:`~common.faces.FaceTrack` (its ``crop_boxes`` are the regions the crops were cut at)."""
    return {
        "video_id": record.video_id,
        "source": record.path,
        "label": record.label,
        "split": record.split,
        "group": record.group,
        "method": record.method,
        "fps": info.fps,
        "num_frames": info.num_frames,
        "width": info.width,
        "height": info.height,
        "crop_size": crop_size,
        "margin": margin,
        "frame_spec": frames,
        "track": track.to_meta(),
    }


def failure_reason(exc: Exception) -> str:
    """Why a video failed: a :class:`ForgelabError`'s own message, else the exception's type and text."""
    return str(exc) if isinstance(exc, ForgelabError) else f"{type(exc).__name__}: {exc}"


_WORKER: dict[str, Any] = {}  # per worker process: the extractor built once by _init_worker


def _exit_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the process that started it dies (even by SIGKILL)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _init_worker(config: PreprocessConfig) -> None:
    import torch

    _exit_with_parent()
    torch.set_num_threads(1)
    _WORKER["extractor"] = config.extractor()
    _WORKER["detect_every"] = config.detect_every


def _work(record: VideoRecord, cache: Path, frames: str, tag: str) -> Outcome:
    return process_video(record, cache, _WORKER["extractor"], frames, tag, _WORKER["detect_every"])


def run_preprocess(
    records: Sequence[VideoRecord],
    cache: Path,
    config: PreprocessConfig,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    show_progress: bool = True,
) -> dict[str, Any]:
    """Preprocess ``records`` into ``cache``; returns the summary dict (also printed by the CLI).

    Videos with a complete entry are skipped; failures are written to ``failures.csv``.
    """
    cache_mod.check_config(cache, config.cache_fields())
    tag = f"shard{shard[0]}of{shard[1]}"
    cache_mod.clean_tmp(cache, tag)
    mine = [r for r in records if in_shard(r.video_id, shard)]
    todo = [r for r in mine if not cache_mod.is_done(cache, r.video_id)]
    skipped = len(mine) - len(todo)
    outcomes: list[Outcome] = []
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="preprocess", unit="video", disable=not show_progress, dynamic_ncols=True)
    frames_done = 0

    def record_outcome(o: Outcome) -> None:
        nonlocal frames_done
        outcomes.append(o)
        frames_done += o.frames
        elapsed = max(time.perf_counter() - start, 1e-9)
        bar.set_postfix(ok=sum(x.status == "ok" for x in outcomes), failed=sum(x.status == "failed" for x in outcomes),
                        fps=f"{frames_done / elapsed:.1f}")  # fmt: skip
        bar.update(1)

    try:
        if workers <= 1:
            extractor = config.extractor()
            for r in todo:
                record_outcome(process_video(r, cache, extractor, config.frames, tag, config.detect_every))
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(config,)) as pool:
                futures: list[Future[Outcome]] = [pool.submit(_work, r, cache, config.frames, tag) for r in todo]
                for f in futures:
                    record_outcome(f.result())
    finally:
        bar.close()
        _write_failures(cache, tag, [o for o in outcomes if o.status == "failed"])
        cache_mod.clean_tmp(cache, tag)
    elapsed = time.perf_counter() - start
    return {
        "ok": sum(o.status == "ok" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "skipped": skipped + sum(o.status == "skipped" for o in outcomes),
        "frames": frames_done,
        "seconds": round(elapsed, 2),
        "frames_per_second": round(frames_done / elapsed, 2) if elapsed > 0 else 0.0,
        "failures": [{"video_id": o.video_id, "reason": o.reason} for o in outcomes if o.status == "failed"],
    }


def _write_failures(cache: Path, tag: str, failed: list[Outcome]) -> None:
    name = "failures.csv" if tag == "shard0of1" else f"failures_{tag}.csv"
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["video_id", "path", "reason"])
    for o in failed:
        w.writerow([o.video_id, o.path, o.reason])
    tmp = cache / f".{name}.tmp{os.getpid()}"
    tmp.write_text(buf.getvalue())
    os.replace(tmp, cache / name)


def layout_caches(records: Sequence[VideoRecord], caches: Sequence[tuple[Path, PreprocessConfig]],
                  tag: str = "layouts") -> dict[str, int]:  # fmt: skip
    """Several face-crop caches of the same videos (one per crop layout: size, margin, square, resampling) from
    one face track per video: each video is decoded and tracked once, then cut once per layout. Resumable (a
    video whose entries all exist is skipped); a video that fails is listed in each cache's ``failures.csv``.

    Args:
        records: the videos.
        caches: ``(cache folder, its settings)``; every settings' ``frames`` must be the same.
        tag: the temporary folders' tag.

    Returns:
        ``{"ok", "skipped", "failed"}`` video counts.
    """
    import dataclasses

    from common.faces import crop_regions, crop_square
    from common.tracking import TRACK_EVERY

    if len({c.frames for _, c in caches}) > 1:
        raise ValueError("every layout must keep the same frames")
    for folder, config in caches:
        cache_mod.check_config(folder, config.cache_fields())
        cache_mod.clean_tmp(folder, tag)
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    failed: list[Outcome] = []
    extractor: FaceExtractor | None = None
    for record in records:
        todo = [(f, c) for f, c in caches if not cache_mod.is_done(f, record.video_id)]
        if not todo:
            counts["skipped"] += 1
            continue
        if extractor is None:
            extractor = dataclasses.replace(todo[0][1], detect_every=TRACK_EVERY).extractor()
        writers: list[cache_mod.EntryWriter] = []
        try:
            with VideoReader(record.path) as reader:
                info = reader.info
                indices = sample_indices(info.num_frames, todo[0][1].frames)
                track = extractor.extract(reader, indices, crops=False, detect_every=TRACK_EVERY)
                regions = [crop_regions(track.boxes, c.margin, c.square) for _, c in todo]
                writers = [cache_mod.EntryWriter(f, record.video_id, tag) for f, _ in todo]
                arrays = [w.crops(len(indices), c.crop_size) for w, (_, c) in zip(writers, todo)]
                pos = 0
                for _, chunk in reader.iter_chunks(32, indices):
                    for a, r, (_, c) in zip(arrays, regions, todo):
                        for i, frame in enumerate(chunk):
                            a[pos + i] = crop_square(frame, r[pos + i], c.crop_size, c.resample)
                    pos += len(chunk)
                for a in arrays:
                    a.flush()
                del arrays
            for w, r, (_, c) in zip(writers, regions, todo):
                w.commit(
                    entry_meta(record, info, c.crop_size, c.margin, c.frames, dataclasses.replace(track, crop_boxes=r))
                )
            counts["ok"] += 1
        except Exception as exc:  # one bad video must never abort the run
            for w in writers:
                w.abort()
            failed.append(Outcome(record.video_id, record.path, "failed", 0, failure_reason(exc)))
            counts["failed"] += 1
    for folder, _ in caches:
        if failed:
            _write_failures(folder, tag, failed)
        cache_mod.clean_tmp(folder, tag)
    return counts
