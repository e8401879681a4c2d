"""``forgelab bench-web``: the server measured from outside, over HTTP, against the command line in the same run.

* upload -> verdict seconds for the bundled sample and for a 10-second 720p video, each next to ``forgelab detect
  --out`` on the same video with the same detectors (a fresh process per video, as a request-time model load
  costs: the ratio is what loading the models once buys);
* N uploads at once: requests refused or failed (expected 0), the slowest upload -> verdict, and whether the job
  folder is empty once every job is deleted.
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.assets import SAMPLE_VIDEO
from common.benchmark import measure_command, synthetic_video
from web.app import Models, Settings, create_app


@contextmanager
def running(models: Models, settings: Settings) -> Iterator[tuple[str, Any]]:
    """The app on uvicorn in a thread, on a free local port: ``(base URL, app)``."""
    import uvicorn

    app = create_app(models, settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.time() + 60
    while not server.started:
        if time.time() > end or not thread.is_alive():
            raise RuntimeError(f"the server did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def verdict_seconds(base: str, video: Path, delete: bool = True) -> dict[str, Any]:
    """Upload ``video``, poll until the job ends; seconds from the first byte sent to the verdict."""
    import httpx

    start = time.perf_counter()
    with httpx.Client(base_url=base, timeout=600) as client:
        reply = client.post("/api/jobs", files={"video": (video.name, video.read_bytes(), "video/mp4")})
        if reply.status_code != 202:
            return {"status": f"HTTP {reply.status_code}", "seconds": time.perf_counter() - start}
        job_id = reply.json()["id"]
        while True:
            job = client.get(f"/api/jobs/{job_id}").json()
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        if delete:
            client.delete(f"/api/jobs/{job_id}")
    out = {"status": job["status"], "seconds": round(seconds, 2), "id": job_id}
    if job["status"] == "done":
        out["verdict"] = job["result"]["verdict"]["verdict"]
    else:
        out["error"] = job.get("error")
    return out


def run(models: Models, checkpoints: list[str], out: Path, uploads: int = 20, workers: int = 1) -> dict[str, Any]:
    """Every figure of the module docstring, written to ``out`` (JSON)."""
    results: dict[str, Any] = {"detectors": [d.detector.module.describe()["name"] for d in models.detectors],
                               "uploads_at_once": uploads, "workers": workers}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="forgelab-bench-web-") as tmp:
        long = synthetic_video(SAMPLE_VIDEO, Path(tmp) / "720p.mp4", num_frames=250)  # 10 s at 25 fps
        videos = {"sample": SAMPLE_VIDEO, "synthetic_720p_10s": long}
        settings = Settings(workers=workers, queue=max(32, uploads), work_dir=Path(tmp))
        with running(models, settings) as (base, app):
            for name, video in videos.items():
                web = verdict_seconds(base, video)
                cli = [measure_command(["detect", str(video), "--checkpoint", c, "--out", str(Path(tmp) / f"{i}.mp4")])
                       for i, c in enumerate(checkpoints)]  # fmt: skip
                cli_s = sum(c["seconds"] for c in cli)
                results[name] = {"web_upload_to_verdict_s": web["seconds"], "web_status": web["status"],
                                 "verdict": web.get("verdict"), "cli_detect_s": round(cli_s, 2),
                                 "cli_over_web": round(cli_s / max(web["seconds"], 1e-9), 2)}  # fmt: skip
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=uploads) as pool:
                jobs = list(pool.map(lambda _: verdict_seconds(base, SAMPLE_VIDEO, delete=False), range(uploads)))
            wall = time.perf_counter() - start
            import httpx

            with httpx.Client(base_url=base) as client:
                deleted = sum(client.delete(f"/api/jobs/{j['id']}").status_code == 200 for j in jobs if "id" in j)
            left = sorted(p.name for p in (app.state.root / "jobs").iterdir())
            results["concurrent"] = {"uploads": uploads, "done": sum(j["status"] == "done" for j in jobs),
                                     "failed_or_refused": sum(j["status"] != "done" for j in jobs),
                                     "slowest_upload_to_verdict_s": max(j["seconds"] for j in jobs),
                                     "wall_s": round(wall, 2), "deleted": deleted,
                                     "files_left_after_delete": left}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return results
