"""The web page and REST API with FastAPI's TestClient: every endpoint, every limit, bad files, concurrent jobs,
expiry, and deletion that leaves nothing behind."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from common.video import probe
from detection.models import ResNeXtLSTM
from tests.test_detection import save_system
from web.app import Models, Settings, create_app
from web.jobs import Jobs, QueueFullError
from web.models import load_models

MESO = Path(__file__).resolve().parent.parent / "pretrained" / "mesonet" / "Meso4_DF.h5"
FIXTURE = Path(__file__).parent / "data" / "coseg_parity_A.pt"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """A tiny trained-format detector, MesoNet's published Meso4 and the parity fixture's part-swap model."""
    folder = tmp_path_factory.mktemp("web-models")
    torch.manual_seed(0)
    ckpt = save_system(folder / "tiny.ckpt", ResNeXtLSTM(trunk="resnet18", hidden_size=8), size=48, frames=4)
    fx = torch.load(FIXTURE, weights_only=True)
    seg = folder / "coseg-10segments.pth.tar"
    torch.save({"segmentation_module": fx["segmentation_module"], "reconstruction_module": fx["reconstruction_module"],
                "epoch": 0}, seg)  # fmt: skip
    return load_models([ckpt, MESO], "cpu", segmenter=seg)


def client_for(models: Models, tmp_path: Path, **settings: object) -> Iterator[TestClient]:
    app = create_app(models, Settings(work_dir=tmp_path, **settings))  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield client
    assert not app.state.root.exists()  # shutdown removes every job folder


@pytest.fixture
def client(models: Models, tmp_path: Path) -> Iterator[TestClient]:
    yield from client_for(models, tmp_path)


def upload(client: TestClient, path: Path | None = None, data: bytes | None = None, name: str = "clip.mp4") -> dict:
    body = data if data is not None else Path(path).read_bytes()  # type: ignore[arg-type]
    reply = client.post("/api/jobs", files={"video": (name, body, "video/mp4")})
    assert reply.status_code == 202, reply.text
    return reply.json()


def wait(client: TestClient, job_id: str, timeout: float = 120) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def job_folders(client: TestClient) -> list[Path]:
    return list((client.app.state.root / "jobs").iterdir())


def test_health_detectors_page_and_api_docs(client: TestClient) -> None:
    assert client.get("/api/health").json()["status"] == "ok"
    detectors = client.get("/api/detectors").json()
    assert [d["id"] for d in detectors] == ["d0", "d1"]
    assert detectors[1]["kind"] == "mesonet" and "Apache" in detectors[1]["licence"]
    page = client.get("/").text
    assert "Check a video" in page and "Make a part swap" in page and detectors[1]["name"] in page
    assert "INCONCLUSIVE" in page and "Delete my video" in page
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/{name}", "/api/health", "/api/detectors",
            "/api/swaps"} <= set(paths)  # fmt: skip
    assert client.get("/docs").status_code == 200
    sheet = client.get("/api/segments.png")
    assert sheet.status_code == 200 and Image.open(io.BytesIO(sheet.content)).size[0] > 0


def test_a_video_gets_a_verdict_files_to_show_and_delete_removes_everything(client: TestClient,
                                                                            face_clip: Path) -> None:  # fmt: skip
    accepted = upload(client, face_clip, name="../../etc/passwd.mp4")
    job = wait(client, accepted["id"])
    assert job["status"] == "done", job.get("error")
    result = job["result"]
    assert result["verdict"]["verdict"] in ("REAL", "FAKE", "INCONCLUSIVE")
    assert 0 <= result["verdict"]["p_fake"] <= 1 and sum(result["verdict"]["detectors"].values()) == 2
    assert [d["id"] for d in result["detectors"]] == ["d0", "d1"]
    assert all(len(d["clips"]) >= 1 and d["frames_used"] >= d["faces_found"] >= 1 for d in result["detectors"])
    assert result["upload_name"] == "../../etc/passwd.mp4"  # shown back as text; never a path on the server
    names = {p.name for p in job_folders(client)[0].iterdir()}
    assert not any("passwd" in n for n in names)
    files = job["files"]
    assert set(files) >= {"video", "faces.png", "timeline.png", "report.json"}
    video = client.get(files["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    local = client.app.state.root / "check.mp4"
    local.write_bytes(video.content)
    assert probe(local).num_frames == probe(face_clip).num_frames
    with av.open(str(local)) as container:
        assert container.streams.video[0].codec_context.name == "h264"  # plays in every browser
    local.unlink()
    for name in ("faces.png", "timeline.png"):
        assert Image.open(io.BytesIO(client.get(files[name]).content)).size[0] > 100
    assert json.loads(client.get(files["report.json"]).content)["verdict"] == result["verdict"]
    assert client.get(f"/api/jobs/{accepted['id']}/../../etc/passwd").status_code == 404
    assert client.get(f"/api/jobs/{accepted['id']}/annotated.mp4").status_code == 404  # fixed names only
    assert client.delete(f"/api/jobs/{accepted['id']}").json()["deleted"] is True
    assert client.get(f"/api/jobs/{accepted['id']}").status_code == 404
    assert client.get(files["video"]).status_code == 404
    assert job_folders(client) == []
    assert client.delete(f"/api/jobs/{accepted['id']}").status_code == 404


@pytest.mark.parametrize(
    "case, body, reason",
    [
        ("text", b"hello, this is not a video\n" * 40, "not a video this server can decode"),
        ("empty", b"", "not a video this server can decode"),
        ("truncated", None, "not a video"),
    ],
)
def test_bad_files_fail_their_job_with_one_reason_and_the_server_goes_on(
    case: str, body: bytes | None, reason: str, client: TestClient, face_clip: Path
) -> None:
    data = body if body is not None else face_clip.read_bytes()[:300]
    job = wait(client, upload(client, data=data)["id"])
    assert job["status"] == "failed" and reason in job["error"]
    assert "/" not in job["error"]  # no server path in the message
    good = wait(client, upload(client, face_clip)["id"])
    assert good["status"] == "done"


def test_no_face_and_too_long_videos_fail_clearly(models: Models, tmp_path: Path, face_clip: Path,
                                                  noise_clip: Path) -> None:  # fmt: skip
    for client in client_for(models, tmp_path, max_seconds=0.2):
        job = wait(client, upload(client, face_clip)["id"])
        assert job["status"] == "failed" and "lasts" in job["error"] and "at most 0 s" in job["error"]
    for client in client_for(models, tmp_path):
        job = wait(client, upload(client, noise_clip)["id"])
        assert job["status"] == "failed" and "face" in job["error"].lower()
        assert "/" not in job["error"]


def test_upload_limits_are_checked_while_streaming(models: Models, tmp_path: Path, face_clip: Path) -> None:
    for client in client_for(models, tmp_path, max_upload_bytes=10_000):
        big = face_clip.read_bytes()
        assert len(big) > 10_000
        reply = client.post("/api/jobs", files={"video": ("a.mp4", big, "video/mp4")})
        assert reply.status_code == 413 and "limit" in reply.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: only counting the stream can stop it
            boundary = b'--xyz\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n'
            yield boundary
            for _ in range(100):
                yield b"\0" * 1000
            yield b"\r\n--xyz--\r\n"

        reply = client.post(
            "/api/jobs", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"}
        )
        assert reply.status_code == 413
        assert job_folders(client) == []  # nothing half-written stays
        assert client.post("/api/jobs", content=b"raw", headers={"content-type": "video/mp4"}).status_code == 415
        reply = client.post("/api/jobs", files={"other": ("a.mp4", b"x", "video/mp4")})
        assert reply.status_code == 400 and "video" in reply.json()["detail"]
        assert job_folders(client) == []


def test_concurrent_uploads_all_finish_and_deleting_them_empties_the_folder(models: Models, tmp_path: Path,
                                                                              face_clip: Path) -> None:  # fmt: skip
    for client in client_for(models, tmp_path, workers=2):
        ids: list[str] = []
        errors: list[str] = []

        def post(c: TestClient = client, out: list[str] = ids, bad: list[str] = errors) -> None:
            try:
                out.append(upload(c, face_clip)["id"])
            except AssertionError as exc:
                bad.append(str(exc))

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(set(ids)) == 6
        finished = [wait(client, i) for i in ids]
        assert [j["status"] for j in finished] == ["done"] * 6, [j.get("error") for j in finished]
        for i in ids:
            assert client.delete(f"/api/jobs/{i}").status_code == 200
        assert job_folders(client) == []


def test_jobs_expire_with_their_files_and_the_queue_is_bounded(tmp_path: Path) -> None:
    jobs = Jobs(tmp_path / "jobs", workers=1, queue=2, ttl=1000)
    a = jobs.new("detect")
    (a.folder / "upload-x").write_bytes(b"1")
    jobs.new("detect")
    with pytest.raises(QueueFullError):
        jobs.new("detect")
    assert jobs.sweep(now=time.time() + 10) == 0
    assert jobs.sweep(now=time.time() + 2000) == 2
    assert list((tmp_path / "jobs").iterdir()) == []
    quick = Jobs(tmp_path / "quick", ttl=0.2)
    job = quick.new("detect")
    quick.submit(job, lambda j: {"ok": True})
    time.sleep(0.8)  # the sweeper runs every ttl / 4
    assert quick.get(job.id) is None and not job.folder.exists()
    quick.close()
    jobs.close()


def test_the_page_escapes_what_it_shows(models: Models, tmp_path: Path) -> None:
    hostile = Models(models.detectors, notes=["<script>alert(1)</script>"])
    for client in client_for(hostile, tmp_path):
        page = client.get("/").text
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert client.post("/api/swaps", files={"image": ("a.png", b"x")}).status_code == 404  # no swap model


def test_part_swap_job(client: TestClient, face_clip: Path) -> None:
    from skimage.data import astronaut

    buf = io.BytesIO()
    Image.fromarray(astronaut()).save(buf, format="PNG")
    files = {
        "image": ("face.png", buf.getvalue(), "image/png"),
        "video": ("t.mp4", face_clip.read_bytes(), "video/mp4"),
    }
    bad = client.post("/api/swaps", files=files, data={"parts": "99"})
    assert bad.status_code == 422 and "outside 1..10" in bad.json()["detail"]
    assert job_folders(client) == []
    job = wait(client, client.post("/api/swaps", files=files, data={"parts": "2,lips"}).json()["id"])
    assert job["status"] == "done", job.get("error")
    assert job["result"]["parts"] == [2] and job["result"]["model"]["segments"] == 10
    local = client.app.state.root / "swap.mp4"
    local.write_bytes(client.get(job["files"]["video"]).content)
    info = probe(local)
    assert info.num_frames == probe(face_clip).num_frames and info.width > info.height  # source | target | result
    not_image = {**files, "image": ("face.png", b"GIF89a nonsense", "image/png")}
    failed = wait(client, client.post("/api/swaps", files=not_image, data={"parts": "2"}).json()["id"])
    assert failed["status"] == "failed" and "not an image" in failed["error"]
    assert np.isfinite(job["result"]["fps"])
