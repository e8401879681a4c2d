"""Asynchronous jobs: a bounded queue in front of a fixed pool of worker threads, each job in its own private folder,
every job and its files removed on DELETE or once its time-to-live has passed.

A job's id is a random token chosen by the server; files are only ever found through the job table, so no URL
path reaches the file system.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ForgelabError

Work = Callable[["Job"], dict[str, Any]]  # runs in a worker; returns the result, raises ForgelabError on bad input


@dataclass
class Job:
    """One job.

    Attributes:
        id: random token (URL-safe).
        kind: ``detect`` or ``swap``.
        folder: its private folder (upload and every derived file).
        status: ``queued``, ``running``, ``done`` or ``failed``.
        progress: 0 to 1 while running.
        stage: what it is doing, in words.
        error: the one-line reason of a failed job.
        result: the result of a done job.
        files: ``{name: path}`` the job offers for download (fixed names).
        created: when it was accepted (``time.time()``).
        finished: when it ended.
    """

    id: str
    kind: str
    folder: Path
    status: str = "queued"
    progress: float = 0.0
    stage: str = "waiting for a worker"
    error: str | None = None
    result: dict[str, Any] | None = None
    files: dict[str, Path] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    finished: float | None = None
    upload_name: str = ""

    def report(self, progress: float, stage: str) -> None:
        """Called by the work as it goes."""
        self.progress, self.stage = max(0.0, min(1.0, progress)), stage

    def public(self) -> dict[str, Any]:
        """The JSON the API returns."""
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "status": self.status, "stage": self.stage,
                               "progress": round(self.progress, 3), "upload_name": self.upload_name,
                               "created": self.created}  # fmt: skip
        if self.status == "failed":
            out["error"] = self.error
        if self.status == "done":
            out["result"] = self.result
            out["files"] = {name: f"/api/jobs/{self.id}/{name}" for name in self.files}
            out["seconds"] = round((self.finished or time.time()) - self.created, 2)
        return out


class QueueFullError(Exception):
    """More jobs waiting than the queue holds."""


class Jobs:
    """The job table, the worker pool and the sweeper.

    Args:
        root: private folder that holds every job's folder.
        workers: jobs run at once.
        queue: jobs accepted but not yet finished, at most (beyond: :class:`QueueFullError`).
        ttl: seconds a job and its files live after it was accepted.
    """

    def __init__(self, root: Path, workers: int = 1, queue: int = 32, ttl: float = 3600.0) -> None:
        self.root, self.limit, self.ttl = root, queue, ttl
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="forgelab-job")
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_forever, name="forgelab-sweeper", daemon=True)
        self._sweeper.start()

    # ------------------------------------------------------------------ table
    def new(self, kind: str) -> Job:
        """A job with a fresh id and an empty private folder (not yet queued)."""
        with self._lock:
            if sum(j.status in ("queued", "running") for j in self._jobs.values()) >= self.limit:
                raise QueueFullError(f"{self.limit} jobs are already waiting or running; try again in a minute")
            job_id = secrets.token_urlsafe(12)
            folder = self.root / job_id
            folder.mkdir(mode=0o700)
            job = Job(job_id, kind, folder)
            self._jobs[job_id] = job
            return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def delete(self, job_id: str) -> bool:
        """Forget a job and remove its folder at once (a running job's work finds its folder gone and fails
        quietly; nothing it writes later survives: :meth:`_run` removes it again)."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is None:
            return False
        shutil.rmtree(job.folder, ignore_errors=True)
        return True

    # ------------------------------------------------------------------ running
    def submit(self, job: Job, work: Work) -> None:
        """Queue ``work(job)`` on the pool."""
        self._pool.submit(self._run, job, work)

    def _run(self, job: Job, work: Work) -> None:
        if self.get(job.id) is None:  # deleted while queued
            return
        job.status, job.stage = "running", "starting"
        try:
            result = work(job)
            job.result, job.status, job.progress, job.stage = result, "done", 1.0, "done"
        except ForgelabError as exc:
            job.status, job.error, job.stage = "failed", self._say(job, str(exc))[:300], "failed"
        except Exception as exc:  # never let a job take the server down; say what happened in one line
            job.status, job.stage = "failed", "failed"
            job.error = f"internal error ({type(exc).__name__}: {self._say(job, str(exc))[:200]})"
        finally:
            job.finished = time.time()
            if self.get(job.id) is None:  # deleted while running: remove what the work wrote after that
                shutil.rmtree(job.folder, ignore_errors=True)

    @staticmethod
    def _say(job: Job, message: str) -> str:
        """The first line of an error, with the server's own paths replaced by words."""
        first = (message.splitlines() or [""])[0]
        return re.sub(re.escape(str(job.folder)) + r"/[\w.-]+", "the uploaded file", first).replace(str(job.folder), "")

    # ------------------------------------------------------------------ expiry
    def sweep(self, now: float | None = None) -> int:
        """Delete the jobs older than the time-to-live; returns how many."""
        now = time.time() if now is None else now
        old = [j.id for j in self.all() if now - j.created > self.ttl]
        return sum(self.delete(job_id) for job_id in old)

    def _sweep_forever(self) -> None:
        period = max(0.05, min(60.0, self.ttl / 4))
        while not self._stop.wait(period):
            self.sweep()

    def close(self) -> None:
        """Stop the sweeper and the workers, and remove every job's folder."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for job in self.all():
            self.delete(job.id)
