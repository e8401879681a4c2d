"""forgelab make-fakes (a valid folder dataset, identity-safe splits, resumable) and the part-swap visibility
metric of the demo."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.commands import main as cli_main
from common.datasets import CsvIndex, FolderIndex
from common.encode import write_video
from common.video import VideoReader
from generation.fakes import FakeJob, RealVideo, SourceFace, identity_groups


@pytest.fixture(scope="module")
def two_people(tmp_path_factory: pytest.TempPathFactory, sample_frames: np.ndarray) -> Path:
    """Two tiny 'identities' (cuts of the sample, one mirrored), one folder each."""
    root = tmp_path_factory.mktemp("reals")
    for name, frames in (("alice", sample_frames[:6]), ("bob", sample_frames[40:46, :, ::-1])):
        (root / name).mkdir()
        write_video(root / name / f"{name}_talk.mp4", list(frames), 29.97)
    return root


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skimage.data import astronaut

    folder = tmp_path_factory.mktemp("sources")
    Image.fromarray(astronaut()).save(folder / "astronaut.png")
    return folder


def make_fakes(two_people: Path, sources: Path, native: Path, out: Path, *extra: str) -> int:
    return cli_main(["make-fakes", str(two_people), "--identity-by", "folder", "--sources", str(sources),
                     "--checkpoint", str(native), "--parts", "2", "7,9", "--out", str(out), *extra])  # fmt: skip


def test_make_fakes_writes_a_dataset_both_indexes_read(two_people: Path, sources: Path, native: Path,
                                                       tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "fakes"
    assert make_fakes(two_people, sources, native, out, "--split", "test") == 0
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert len(rows) == 2 + 2 * 2  # per person: the real copy, a fake per parts choice
    fakes = [r for r in rows if r["label"] == "fake"]
    assert {r["parts"] for r in fakes} == {"2", "7-9"} and {r["method"] for r in fakes} == {"part-swap"}
    assert {r["source"] for r in fakes} == {"astronaut"} and {r["target"] for r in fakes} == {"alice", "bob"}
    for r in rows:
        with VideoReader(out / r["path"]) as reader:
            assert reader.info.num_frames == 6 and (reader.info.width, reader.info.height) == (176, 144)
    recs = CsvIndex(str(out / "manifest.csv")).records()
    assert sorted(r.label for r in recs) == [0, 0, 1, 1, 1, 1] and {r.split for r in recs} == {"test"}
    assert {r.method for r in recs if r.label} == {"part-swap"}
    folder = FolderIndex(str(out), group_by_folder=True).records()
    assert len(folder) == 6 and {r.group for r in folder} == {"alice", "bob"}
    # a swap changes the face only: the real copy and its fake agree outside the face
    with VideoReader(out / "real/alice/alice_talk.mp4") as a, VideoReader(out / fakes[0]["path"]) as b:
        real, fake = a.read([3])[0].astype(int), b.read([3])[0].astype(int)
    assert np.median(np.abs(real - fake)) <= 2 and np.abs(real - fake).max() > 20


def test_splits_never_share_an_identity() -> None:
    people = {n: RealVideo(n, f"{n}.mp4", n) for n in ("a", "b", "c", "d", "e")}
    src = {n: SourceFace(n, f"{n}.png", n) for n in ("a", "x")}
    jobs = [FakeJob(people["a"], "real"), FakeJob(people["b"], "part-swap", src["a"], (2,)),
            FakeJob(people["c"], "part-swap", src["x"], (2,)), FakeJob(people["d"], "real"),
            FakeJob(people["e"], "part-swap", src["x"], (2,))]  # fmt: skip
    groups = identity_groups(jobs)
    assert groups["a"] == groups["b"]  # b's fake shows a's face
    assert groups["c"] == groups["e"] == groups["x"]  # both faked with x's parts
    assert groups["d"] == "d" and groups["a"] != groups["c"]


def test_auto_splits_keep_identities_apart(two_people: Path, sources: Path, native: Path, tmp_path: Path) -> None:
    out = tmp_path / "fakes"
    assert make_fakes(two_people, sources, native, out, "--parts", "2", "--test-fraction", "0.5") == 0
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    # alice and bob both received the astronaut's parts: one identity group, so one split for all
    assert len({r["group"] for r in rows}) == 1 and len({r["split"] for r in rows}) == 1


def test_make_fakes_resumes(two_people: Path, sources: Path, native: Path, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import generation.fakes as fakes

    out = tmp_path / "fakes"
    real_make, made = fakes.MakeFakes.make, []

    def stop_after_three(self: fakes.MakeFakes, job: FakeJob, dst: Path, faces: dict) -> int:
        if len(made) == 3:
            raise KeyboardInterrupt
        made.append(job.relpath)
        return real_make(self, job, dst, faces)

    monkeypatch.setattr(fakes.MakeFakes, "make", stop_after_three)
    assert make_fakes(two_people, sources, native, out, "--split", "test") != 0
    first = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    assert len(first) == 3 and not (out / "manifest.csv").exists()
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix != ".mp4"]  # nothing half-written
    made.clear()
    monkeypatch.setattr(fakes.MakeFakes, "make", lambda self, job, dst, faces: made.append(1) or real_make(
        self, job, dst, faces))  # fmt: skip
    assert make_fakes(two_people, sources, native, out, "--split", "test") == 0
    assert len(made) == 6 - 3
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())
    assert len(list(csv.DictReader((out / "manifest.csv").open()))) == 6


def test_self_blend_fakes_change_only_the_face(sample_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "sb"
    args = ["make-fakes", "--dataset", "single", "--root", str(sample_video), "--from-split", "val", "--method",
            "self-blend", "--variants", "2", "--split", "test", "--out", str(out)]  # fmt: skip
    assert cli_main(args) == 0
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert [r["label"] for r in rows] == ["real", "fake", "fake"] and rows[0]["frames"] == "90:120"
    with VideoReader(out / rows[0]["path"]) as a, VideoReader(out / rows[1]["path"]) as b:
        real, fake = a.read(list(range(30))).astype(int), b.read(list(range(30))).astype(int)
    diff = np.abs(real - fake).max(-1)
    assert np.median(diff) <= 2 and np.percentile(diff, 99.5) > 10
    ys, xs = np.nonzero(diff.max(0) > 12)  # the change sits on the face (upper middle of the frame)
    assert 20 < xs.mean() < 140 and 10 < ys.mean() < 110


def test_make_fakes_bad_inputs(two_people: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["make-fakes", str(two_people), "--out", str(tmp_path / "o")]) != 0
    assert "part-swap needs --sources" in capsys.readouterr().err
    assert cli_main(["make-fakes", "--out", str(tmp_path / "o")]) != 0
    assert "real VIDEO files / folders or --dataset/--root" in capsys.readouterr().err


# --------------------------------------------------------------------------- visibility of a swap
def test_visibility_metric_on_a_known_change(tmp_path: Path) -> None:
    from generation.demo import swap_visibility

    h, w = 48, 64
    target = np.full((5, h, w, 3), 100, np.uint8)
    result = target.copy()
    masks = np.zeros((5, h, w), np.uint8)
    masks[:, 10:30, 20:40] = 255
    masks[:, 9, 20:40] = 100  # a feathered edge: neither inside (< 0.5) nor outside (> 0)
    result[:, 10:30, 20:40] = 160
    sbs = [np.concatenate([np.zeros((h, h, 3), np.uint8), t, r], axis=1) for t, r in zip(target, result)]
    video = write_video(tmp_path / "sbs.mp4", sbs, 10, lossless=True)
    seen = swap_visibility(video, masks)
    assert seen["p99_inside"] == 60 and seen["median_outside"] == 0 and seen["max_outside"] == 0
    assert seen["part_share"] == pytest.approx(20 * 20 / (h * w), abs=1e-3)


def test_visibility_of_a_short_real_swap(native: Path, face_clip: Path, sources: Path, tmp_path: Path) -> None:
    from generation.demo import swap_visibility
    from generation.swap import load_segmenter, swap_video

    model = load_segmenter(native, device="cpu")
    res = swap_video(model, sources / "astronaut.png", face_clip, tmp_path / "s.mp4", [2, 7, 9], side_by_side=True,
                     keep_masks=True, progress=False)  # fmt: skip
    masks = res.pop("masks")
    assert masks.shape == (12, 144, 176) and masks.max() > 100
    seen = swap_visibility(res["output"], masks)
    assert seen["median_outside"] <= 2  # outside the feathered part: codec noise only
    assert seen["p99_inside"] > seen["median_outside"] and 0 < seen["part_share"] < 0.5
