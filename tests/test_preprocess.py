"""``forgelab preprocess``: cache content, failures, resumability after a kill, shards, CLI errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from common.cache import read_entry
from common.commands import USAGE_EXIT
from common.commands import main as cli_main
from common.datasets import FolderIndex
from common.preprocess import PreprocessConfig, in_shard, run_preprocess
from tests.conftest import copy_video

CONFIG = PreprocessConfig(frames="all", crop_size=64, device="cpu")


@pytest.fixture()
def dataset(tmp_path: Path, face_clip: Path, noise_clip: Path) -> Path:
    root = tmp_path / "data"
    for i in range(4):
        copy_video(face_clip, root / "real" / f"r{i}.mp4")
    copy_video(face_clip, root / "fake" / "f0.mp4")
    copy_video(noise_clip, root / "fake" / "noface.mp4")
    (root / "fake" / "broken.mp4").write_text("<html>not a video</html>")
    return root


def test_preprocess_writes_cache_and_failures(dataset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    recs = FolderIndex(str(dataset), val_fraction=0, test_fraction=0).records()
    summary = run_preprocess(recs, cache, CONFIG, show_progress=False)
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (5, 2, 0)
    assert summary["frames"] == 5 * 12
    entry = read_entry(cache, "real/r0")
    assert entry.crops.shape == (12, 64, 64, 3) and entry.crops.dtype == np.uint8
    m = entry.meta
    assert m["label"] == 0 and m["fps"] == pytest.approx(29.97, abs=0.01) and m["num_frames"] == 12
    assert m["track"]["frame_indices"] == list(range(12)) and len(m["track"]["boxes"]) == 12
    assert len(m["track"]["landmarks"][0]) == 5 and m["track"]["frames_without_face"] == []
    assert read_entry(cache, "fake/f0").meta["label"] == 1
    with (cache / "failures.csv").open() as fh:
        rows = {r["video_id"]: r["reason"] for r in csv.DictReader(fh)}
    assert set(rows) == {"fake/noface", "fake/broken"}
    assert "no face found" in rows["fake/noface"] and "not a readable video" in rows["fake/broken"]
    assert not (cache / "fake" / "noface").exists() and not (cache / ".tmp").exists()
    again = run_preprocess(recs, cache, CONFIG, show_progress=False)
    assert (again["ok"], again["failed"], again["skipped"]) == (0, 2, 5)


def test_cache_refuses_other_settings(dataset: Path, tmp_path: Path) -> None:
    from common.errors import DatasetError

    recs = FolderIndex(str(dataset), val_fraction=0, test_fraction=0).records()[:1]
    run_preprocess(recs, tmp_path / "c", CONFIG, show_progress=False)
    with pytest.raises(DatasetError, match="crop_size=64"):
        run_preprocess(recs, tmp_path / "c", PreprocessConfig(frames="all", crop_size=32), show_progress=False)


def test_shards_partition() -> None:
    ids = [f"v{i}" for i in range(200)]
    parts = [{v for v in ids if in_shard(v, (i, 3))} for i in range(3)]
    assert set().union(*parts) == set(ids) and sum(len(p) for p in parts) == 200
    assert all(40 < len(p) < 95 for p in parts)


def cache_state(cache: Path) -> dict[str, tuple[bytes, dict]]:
    out = {}
    for meta in sorted(cache.rglob("meta.json")):
        if ".tmp" in meta.parts:
            continue
        vid = meta.parent.relative_to(cache).as_posix()
        out[vid] = (np.load(meta.parent / "crops.npy").tobytes(), json.loads(meta.read_text()))
    return out


def test_resume_after_kill_gives_identical_cache(dataset: Path, tmp_path: Path) -> None:
    (dataset / "fake" / "broken.mp4").unlink()
    for i in range(4, 8):
        copy_video(dataset / "real" / "r0.mp4", dataset / "real" / f"r{i}.mp4")
    args = ["--root", str(dataset), "--frames", "all", "--crop-size", "64", "--device", "cpu"]
    clean = tmp_path / "clean"
    assert cli_main(["preprocess", *args, "--out", str(clean)]) == 3  # noface.mp4 fails
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "common.commands", "preprocess", *args, "--out", str(killed)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(killed.rglob("meta.json")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = cache_state(killed)
    assert 0 < len(partial) < 9, "the kill should land mid-run"
    for d in killed.rglob("crops.npy"):  # nothing half-written is visible: crops only with their meta
        assert (d.parent / "meta.json").is_file() or ".tmp" in d.parts
    assert cli_main(["preprocess", *args, "--out", str(killed)]) == 3
    resumed, reference = cache_state(killed), cache_state(clean)
    assert sorted(resumed) == sorted(reference) and len(reference) == 9
    for vid in reference:
        assert resumed[vid][0] == reference[vid][0], vid
        assert resumed[vid][1] == reference[vid][1], vid
    assert not (killed / ".tmp").exists()


def test_concurrent_runs_on_one_cache_never_fail_a_good_video(dataset: Path, tmp_path: Path) -> None:
    for i in range(4, 8):
        copy_video(dataset / "real" / "r0.mp4", dataset / "real" / f"r{i}.mp4")
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "common.commands", "preprocess", "--root", str(dataset), "--frames", "all",
           "--crop-size", "64", "--device", "cpu", "--out", str(cache)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    runs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [p.communicate(timeout=300) for p in runs]
    bad = {"fake/noface", "fake/broken"}
    for (out, err), p in zip(outputs, runs):
        assert p.returncode in (0, 3), err
        failed = {line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("  failed ")}
        assert out.startswith("preprocess: ") and failed <= bad, out
    with (cache / "failures.csv").open() as fh:
        assert {row["video_id"] for row in csv.DictReader(fh)} <= bad
    assert sorted(cache_state(cache)) == sorted([*(f"real/r{i}" for i in range(8)), "fake/f0"])
    assert not (cache / ".tmp").exists()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_workers_exit_when_the_parent_is_killed(dataset: Path, tmp_path: Path, sample_video: Path) -> None:
    for i in range(4, 12):  # ~10 s of work per worker left when the parent dies
        copy_video(sample_video, dataset / "real" / f"r{i}.mp4")
    cmd = [sys.executable, "-m", "common.commands", "preprocess", "--root", str(dataset), "--frames", "all",
           "--crop-size", "64", "--device", "cpu", "--workers", "2", "--out", str(tmp_path / "cache")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_children(proc.pid)) < 2 and proc.poll() is None:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) >= 2 and proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 3
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() and _state(w) != "Z" for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and _state(w) != "Z"]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_cli_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["preprocess", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset root does not exist" in err
    (tmp_path / "d").mkdir()
    assert cli_main(["preprocess", "--root", str(tmp_path / "d"), "--out", str(tmp_path / "c")]) == 1
    assert "expected folders real/ and fake/" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # a bad frame spec is a usage error, found while parsing
        cli_main(["preprocess", "--root", str(tmp_path / "d"), "--out", str(tmp_path / "c"), "--frames", "x:1"])
    assert exc.value.code == USAGE_EXIT and "frame spec" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["preprocess", "--root", ".", "--out", "c", "--shard", "3/2"])
