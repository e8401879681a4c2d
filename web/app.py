"""The web page and REST API (FastAPI): upload a video, get a verdict you can show; upload a face and a video, get a
part swap. Models are loaded once (:class:`Models`); jobs run in a bounded worker pool (:mod:`web.jobs`).

API (OpenAPI page at ``/docs``):

* ``POST /api/jobs`` (multipart field ``video``) -> 202 ``{"id"}``; ``POST /api/swaps`` (fields ``image``,
  ``video``, ``parts``) -> 202 ``{"id"}``;
* ``GET /api/jobs/{id}``: status (``queued``, ``running`` with progress, ``done`` with the result, ``failed`` with
  a one-line reason); ``GET /api/jobs/{id}/{video|faces.png|timeline.png|cam.png|report.json}``;
  ``DELETE /api/jobs/{id}`` removes the upload and every derived file at once;
* ``GET /api/health``, ``GET /api/detectors``, ``GET /api/segments.png`` (the swap model's parts on a sample face).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from common.errors import ForgelabError
from detection.predict import VerdictRules
from web.jobs import Job, Jobs, QueueFullError
from web.uploads import receive
from web.work import ServedDetector, detect_job, swap_job

TEMPLATES = Path(__file__).parent / "templates"
DOWNLOADS = {"video": "video/mp4", "faces.png": "image/png", "timeline.png": "image/png", "cam.png": "image/png",
             "report.json": "application/json"}  # fmt: skip


@dataclass
class Settings:
    """Server limits.

    Attributes:
        max_upload_bytes: largest request body (413 beyond, checked while streaming).
        max_seconds: longest video accepted (the job fails beyond).
        ttl: seconds a job and its files live.
        workers: jobs run at once.
        queue: jobs waiting or running at most (503 beyond).
        work_dir: parent of the private job folder (default: the system temp folder).
        rules: the verdict rules.
    """

    max_upload_bytes: int = 200 * 1024 * 1024
    max_seconds: float = 600.0
    ttl: float = 3600.0
    workers: int = 1
    queue: int = 32
    work_dir: Path | None = None
    rules: VerdictRules = field(default_factory=VerdictRules)


@dataclass
class Models:
    """What the server loaded at start-up: the detectors (the first one annotates the video) and the part-swap
    model with the words that say which one it is."""

    detectors: list[ServedDetector]
    segmenter: Any = None
    segmenter_source: str = ""
    segments_png: bytes | None = None
    notes: list[str] = field(default_factory=list)


def create_app(models: Models, settings: Settings | None = None) -> FastAPI:
    """The application over loaded ``models``; its job folder is private (mode 700) and removed at shutdown."""
    settings = settings or Settings()
    if not models.detectors:
        raise ForgelabError("the server has no detector to run")
    root = Path(tempfile.mkdtemp(prefix="forgelab-web-", dir=settings.work_dir))
    jobs = Jobs(root / "jobs", settings.workers, settings.queue, settings.ttl)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.close()  # at shutdown: workers stopped, every job's files removed
        shutil.rmtree(root, ignore_errors=True)

    app = FastAPI(title="forgelab", description="Deepfake verdicts you can show, and face part swaps",
                  version="0.1.0", lifespan=lifespan)  # fmt: skip
    app.state.jobs, app.state.models, app.state.settings, app.state.root = jobs, models, settings, root
    templates = Jinja2Templates(directory=str(TEMPLATES))  # autoescaping is on for .html templates

    # ------------------------------------------------------------------ page
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request) -> Response:
        context = {"detectors": [d.describe() for d in models.detectors], "swap": models.segmenter is not None,
                   "segmenter_source": models.segmenter_source, "parts": part_list(models),
                   "max_mb": settings.max_upload_bytes // (1024 * 1024), "max_seconds": int(settings.max_seconds),
                   "ttl_minutes": int(settings.ttl // 60), "rules": settings.rules, "notes": models.notes}  # fmt: skip
        return templates.TemplateResponse(request, "index.html", context)

    # ------------------------------------------------------------------ jobs
    async def accept(request: Request, kind: str, wanted: dict[str, str]) -> tuple[Job, Any]:
        try:
            job = jobs.new(kind)
        except QueueFullError as exc:
            raise HTTPException(503, str(exc)) from None
        try:
            upload = await receive(request, job.folder, wanted, settings.max_upload_bytes)
        except HTTPException:
            jobs.delete(job.id)
            raise
        job.upload_name = " + ".join(upload.names.values())
        return job, upload

    @app.post("/api/jobs", status_code=202, summary="Upload a video (multipart field `video`) for a verdict")
    async def create_job(request: Request) -> dict[str, str]:
        job, upload = await accept(request, "detect", {"video": "upload"})
        video = upload.files["video"]
        jobs.submit(job, lambda j: detect_job(j, video, models.detectors, settings.rules, settings.max_seconds))
        return {"id": job.id, "status": job.status}

    @app.post("/api/swaps", status_code=202, summary="Upload a face image and a video (fields `image`, `video`, "
              "`parts`: comma-separated part numbers or names) for a part swap")  # fmt: skip
    async def create_swap(request: Request) -> dict[str, str]:
        if models.segmenter is None:
            raise HTTPException(404, "this server has no part-swap model")
        job, upload = await accept(request, "swap", {"image": "source", "video": "target"})
        try:
            parts = models.segmenter.parse_parts(upload.fields.get("parts", ""))
        except ForgelabError as exc:
            jobs.delete(job.id)
            raise HTTPException(422, str(exc).replace("--parts", "parts")) from None
        image, video = upload.files["image"], upload.files["video"]
        jobs.submit(job, lambda j: swap_job(j, image, video, parts, models.segmenter, settings.max_seconds))
        return {"id": job.id, "status": job.status}

    def find(job_id: str) -> Job:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job (finished jobs are deleted after their time-to-live)")
        return job

    @app.get("/api/jobs/{job_id}", summary="A job's status, and its result once done")
    def job_status(job_id: str) -> dict[str, Any]:
        return find(job_id).public()

    @app.get("/api/jobs/{job_id}/{name}", summary="A done job's file: video, faces.png, timeline.png, cam.png or "
             "report.json")  # fmt: skip
    def job_file(job_id: str, name: str) -> Response:
        job = find(job_id)
        path = job.files.get(name) if name in DOWNLOADS else None
        if job.status != "done" or path is None or not path.is_file():
            raise HTTPException(404, f"job {job_id} has no file {name!r}")
        return FileResponse(path, media_type=DOWNLOADS[name], headers={"Cache-Control": "no-store"})

    @app.delete("/api/jobs/{job_id}", summary="Delete a job: its upload and every derived file")
    def delete_job(job_id: str) -> dict[str, Any]:
        if not jobs.delete(job_id):
            raise HTTPException(404, "no such job")
        return {"id": job_id, "deleted": True}

    # ------------------------------------------------------------------ about the server
    @app.get("/api/health", summary="Liveness and load")
    def health() -> dict[str, Any]:
        states = [j.status for j in jobs.all()]
        return {"status": "ok", "detectors": len(models.detectors), "swap": models.segmenter is not None,
                "jobs": {s: states.count(s) for s in ("queued", "running", "done", "failed")},
                "workers": settings.workers, "queue": settings.queue}  # fmt: skip

    @app.get("/api/detectors", summary="The loaded detectors, with their weights' source and licence")
    def detectors() -> list[dict[str, Any]]:
        return [d.describe() for d in models.detectors]

    @app.get("/api/segments.png", summary="The part-swap model's segments on a sample face")
    def segments() -> Response:
        if models.segments_png is None:
            raise HTTPException(404, "this server has no part-swap model")
        return Response(models.segments_png, media_type="image/png")

    return app


def part_list(models: Models) -> list[dict[str, Any]]:
    """The swap model's parts (1..K) with their names where known."""
    seg = models.segmenter
    if seg is None:
        return []
    return [{"index": k, "name": seg.part_names.get(k, "")} for k in range(1, seg.num_segments + 1)]
