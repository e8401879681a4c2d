"""The face-crop cache: one folder per video with ``crops.npy`` (uint8, memory-mappable) and ``meta.json``.

Layout::

    <cache>/cache_config.json         crop size, margin, frame spec the cache was built with
    <cache>/<video_id>/crops.npy      uint8 [N, S, S, 3] RGB face crops
    <cache>/<video_id>/meta.json      source, label, fps, frame indices, boxes, landmarks, scores, ...
    <cache>/failures.csv              video_id, path, reason of the last run's failures
    <cache>/.tmp/                     entries being written (ignored by readers)

An entry is written into ``.tmp/`` and renamed into place only when complete, so a reader (or a
resumed run) sees either a whole entry or none.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import DatasetError
from common.faces import landmarks_in_crop

CONFIG_FILE = "cache_config.json"
META_FILE = "meta.json"
CROPS_FILE = "crops.npy"
TMP_DIR = ".tmp"
CONFIG_DEFAULTS = {"square": True, "resample": "bilinear"}  # settings added later: what older caches used


def entry_dir(cache: Path, video_id: str) -> Path:
    """Folder of one video's entry."""
    return cache / video_id


def is_done(cache: Path, video_id: str) -> bool:
    """Whether a complete entry exists for ``video_id``."""
    return (entry_dir(cache, video_id) / META_FILE).is_file()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def check_config(cache: Path, config: dict[str, Any]) -> None:
    """Record the build settings of a new cache, or refuse to mix settings in an existing one."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / CONFIG_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise DatasetError(path, "cache config is not valid JSON") from None
        diff = {k: (old.get(k, CONFIG_DEFAULTS.get(k)), v) for k, v in config.items()
                if old.get(k, CONFIG_DEFAULTS.get(k)) != v}  # fmt: skip
        if diff:
            k, (a, b) = next(iter(diff.items()))
            raise DatasetError(cache, f"cache was built with {k}={a!r}, this run asks for {b!r}; use another --out")
    else:
        write_json_atomic(path, config)


class EntryWriter:
    """Writes one entry atomically: ``crops`` is a memory-mapped array to fill, ``commit`` publishes.

    Args:
        cache: the cache root.
        video_id: the entry's id.
        tag: distinguishes concurrent writers (e.g. the shard), part of the temporary folder's name.
    """

    def __init__(self, cache: Path, video_id: str, tag: str) -> None:
        self.final = entry_dir(cache, video_id)
        safe = video_id.replace("/", "__").replace("#", "_")
        self.tmp = cache / TMP_DIR / f"{tag}-{os.getpid()}-{safe}"  # never another process's folder
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)

    def crops(self, n: int, size: int) -> np.ndarray:
        """A writable uint8 ``[n, size, size, 3]`` memmap backed by the entry's ``crops.npy``."""
        return np.lib.format.open_memmap(self.tmp / CROPS_FILE, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))

    def commit(self, meta: dict[str, Any]) -> None:
        """Write ``meta.json`` and move the entry into place."""
        (self.tmp / META_FILE).write_text(json.dumps(meta))
        self.final.parent.mkdir(parents=True, exist_ok=True)
        if self.final.exists():  # a concurrent writer finished first: keep theirs
            self.abort()
            return
        os.rename(self.tmp, self.final)

    def abort(self) -> None:
        """Remove the temporary folder."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_stale_locks(locks: Path) -> None:
    """Remove lock files nobody holds (left by a killed run)."""
    import fcntl

    for path in locks.glob("*.lock") if locks.is_dir() else []:
        with contextlib.suppress(OSError), path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises when a live run holds it
            path.unlink()
            fcntl.flock(fh, fcntl.LOCK_UN)


def clean_tmp(cache: Path, tag: str) -> None:
    """Remove leftovers of interrupted runs with the same ``tag`` (folders of processes still alive - a
    concurrent run on the same cache - are left alone)."""
    tmp = cache / TMP_DIR
    if tmp.is_dir():
        for p in tmp.glob(f"{tag}-*"):
            pid = p.name[len(tag) + 1 :].split("-", 1)[0]
            if not (pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid))):
                shutil.rmtree(p, ignore_errors=True)
        _drop_stale_locks(tmp / "locks")
        with contextlib.suppress(OSError):
            (tmp / "locks").rmdir()
        with contextlib.suppress(OSError):
            tmp.rmdir()


@contextlib.contextmanager
def entry_lock(cache: Path, video_id: str) -> Iterator[bool]:
    """Try to own ``video_id``'s entry for writing: yields True when this process holds the lock (released
    when the block ends or the process dies), False when another run is writing it right now."""
    import fcntl

    locks = cache / TMP_DIR / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / (video_id.replace("/", "__").replace("#", "_") + ".lock")
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:  # whoever locks a removed file next finds the entry done (or retries a failed one): safe
            with contextlib.suppress(OSError):
                path.unlink()
            fcntl.flock(fh, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        locks.rmdir()


@dataclass
class CacheEntry:
    """One video read back from the cache.

    Attributes:
        crops: uint8 ``[N, S, S, 3]`` (memory-mapped, read-only).
        meta: the ``meta.json`` dict.
    """

    crops: np.ndarray
    meta: dict[str, Any]

    @cached_property
    def frame_indices(self) -> np.ndarray:
        """int64 ``[N]`` source frame numbers of the crops (parsed from the JSON once)."""
        return np.asarray(self.meta["track"]["frame_indices"], dtype=np.int64)

    @cached_property
    def crop_landmarks(self) -> np.ndarray:
        """float32 ``[N, 5, 2]`` face landmarks in crop pixel coordinates (computed once)."""
        track = self.meta["track"]
        return landmarks_in_crop(track["landmarks"], track["crop_boxes"], self.crops.shape[1])


def read_entry(cache: Path, video_id: str) -> CacheEntry:
    """Open one entry (crops memory-mapped)."""
    d = entry_dir(cache, video_id)
    try:
        meta = json.loads((d / META_FILE).read_text())
        crops = np.load(d / CROPS_FILE, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DatasetError(d, f"cache entry is unreadable ({exc})") from None
    return CacheEntry(crops, meta)
