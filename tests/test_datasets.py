"""Dataset indexes on tiny fake trees of each layout: records, labels, reproducible leak-free splits, errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from common.datasets import CelebDFIndex, CsvIndex, FaceForensicsIndex, FolderIndex, VoxIndex, group_split
from common.datasets.records import index_hash
from common.errors import DatasetError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


def splits_of(records) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in records:
        out.setdefault(r.split, set()).add(r.group)
    return out


# ---------------------------------------------------------------- folder / csv
def test_folder_index(tmp_path: Path) -> None:
    for i in range(10):
        touch(tmp_path / "real" / f"person{i % 5}" / f"r{i}.mp4")
        touch(tmp_path / "fake" / f"person{i % 5}" / f"f{i}.avi")
    touch(tmp_path / "real" / "notes.txt")
    recs = FolderIndex(str(tmp_path), group_by_folder=True, seed=3).records()
    assert len(recs) == 20
    assert {r.label for r in recs if r.video_id.startswith("real/")} == {0}
    assert {r.label for r in recs if r.video_id.startswith("fake/")} == {1}
    assert "real/person0/r0" in {r.video_id for r in recs}
    groups = splits_of(recs)
    assert set(groups) == {"train", "val", "test"}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])
    again = FolderIndex(str(tmp_path), group_by_folder=True, seed=3).records()
    assert [r.split for r in again] == [r.split for r in recs] and index_hash(again) == index_hash(recs)
    other = FolderIndex(str(tmp_path), group_by_folder=True, seed=4).records()
    assert [r.split for r in other] != [r.split for r in recs]  # another seed draws other splits...
    assert index_hash(other) != index_hash(recs)  # ...and the hash logged with every run tells them apart
    moved = [replace(recs[0], split="test" if recs[0].split != "test" else "train"), *recs[1:]]
    assert index_hash(moved) != index_hash(recs)  # one video changing split changes the hash


def test_folder_index_keeps_videos_that_share_a_name(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "x.mp4")
    touch(tmp_path / "real" / "x.mov")  # same stem: one cache entry each, not one overwriting the other
    touch(tmp_path / "real" / "y.mp4")
    touch(tmp_path / "fake" / "z.mp4")
    ids = sorted(r.video_id for r in FolderIndex(str(tmp_path)).records())
    assert ids == ["fake/z", "real/x.mov", "real/x.mp4", "real/y"]


def test_folder_wrong_layout(tmp_path: Path) -> None:
    touch(tmp_path / "videos" / "a.mp4")
    with pytest.raises(DatasetError, match="expected folders real/ and fake/"):
        FolderIndex(str(tmp_path)).records()
    with pytest.raises(DatasetError, match="does not exist"):
        FolderIndex(str(tmp_path / "nope")).records()


def test_unreadable_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "locked"
    (d / "real").mkdir(parents=True)
    real_iterdir = Path.iterdir

    def deny(self: Path):  # chmod 0 does not stop root, so simulate the OS answer
        if self == d:
            raise PermissionError(13, "Permission denied")
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", deny)
    with pytest.raises(DatasetError, match="locked: dataset root is not readable"):
        FolderIndex(str(d)).records()


def test_csv_index(tmp_path: Path) -> None:
    touch(tmp_path / "v" / "a.mp4")
    (tmp_path / "m.csv").write_text(
        "path,label,split,group\nv/a.mp4,real,train,p1\nv/b.mp4,fake,train,p1\nv/c.mp4,1,test,p2\nv/d.mp4,0,val,p3\n"
    )
    recs = CsvIndex(str(tmp_path / "m.csv")).records()
    assert [(r.video_id, r.label, r.split) for r in recs] == [
        ("v/a", 0, "train"), ("v/b", 1, "train"), ("v/c", 1, "test"), ("v/d", 0, "val"),
    ]  # fmt: skip
    assert recs[0].path == str(tmp_path / "v" / "a.mp4")


def test_csv_without_split_draws_by_group(tmp_path: Path) -> None:
    rows = "\n".join(f"x{i}.mp4,{i % 2},g{i // 4}" for i in range(40))
    (tmp_path / "m.csv").write_text("path,label,group\n" + rows + "\n")
    recs = CsvIndex(str(tmp_path / "m.csv"), seed=1).records()
    g = splits_of(recs)
    assert set(g) == {"train", "val", "test"}
    assert not (g["train"] & g["val"]) and not (g["val"] & g["test"]) and not (g["train"] & g["test"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,label\na.mp4,real\n", "header must contain path and label"),
        ("path,label\na.mp4,maybe\n", r"m.csv:2: label 'maybe'"),
        ("path,label,split\na.mp4,real,dev\n", "split 'dev'"),
        ("path,label\n,real\n", "empty path"),
        ("path,label\na.mp4,real\na.mp4,fake\n", "listed twice"),
        ("path,label,split,group\na.mp4,real,train,p\nb.mp4,fake,val,p\n", "group 'p' appears in both"),
    ],
)
def test_csv_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        CsvIndex(str(tmp_path / "m.csv")).records()


def test_csv_binary_file(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_bytes(b"\xff\xfe\x00\x01binary")
    with pytest.raises(DatasetError, match="not a readable CSV|header"):
        CsvIndex(str(tmp_path / "m.csv")).records()


# ---------------------------------------------------------------- Celeb-DF
def make_celebdf(root: Path) -> None:
    for i in range(12):
        for n in range(2):
            touch(root / "Celeb-real" / f"id{i}_{n:04d}.mp4")
    for n in range(4):
        touch(root / "YouTube-real" / f"{n:05d}.mp4")
    for i in range(12):
        for j in (i + 1) % 12, (i + 5) % 12:
            touch(root / "Celeb-synthesis" / f"id{i}_id{j}_0000.mp4")
    test = ["1 Celeb-real/id0_0000.mp4", "1 YouTube-real/00000.mp4", "0 Celeb-synthesis/id0_id1_0000.mp4",
            "0 Celeb-synthesis/id3_id8_0000.mp4"]  # fmt: skip
    (root / "List_of_testing_videos.txt").write_text("\n".join(test) + "\n")


def test_celebdf_index(tmp_path: Path) -> None:
    make_celebdf(tmp_path)
    recs = CelebDFIndex(str(tmp_path), val_fraction=0.3, seed=0).records()
    by_id = {r.video_id: r for r in recs}
    assert len(recs) == 24 + 4 + 24
    test = {r.video_id for r in recs if r.split == "test"}
    assert test == {"Celeb-real/id0_0000", "YouTube-real/00000", "Celeb-synthesis/id0_id1_0000",
                    "Celeb-synthesis/id3_id8_0000"}  # fmt: skip
    assert by_id["Celeb-real/id0_0000"].label == 0 and by_id["Celeb-synthesis/id0_id1_0000"].label == 1
    fake = by_id["Celeb-synthesis/id2_id3_0000"]
    assert fake.group == "id2" and fake.extra["source_identity"] == "id3" and fake.method == "Celeb-synthesis"
    train_ids = {i for r in recs if r.split == "train" for i in (r.group, *r.extra.values())}
    val_ids = {i for r in recs if r.split == "val" for i in (r.group, *r.extra.values())}
    assert val_ids and train_ids and not (train_ids & val_ids)
    assert {r.split for r in recs} <= {"train", "val", "test", "unassigned"}
    again = CelebDFIndex(str(tmp_path), val_fraction=0.3, seed=0).records()
    assert [r.split for r in again] == [r.split for r in recs]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_celebdf_validation_has_both_classes(tmp_path: Path, seed: int) -> None:
    """A larger synthetic Celeb-DF (40 celebrities, each swapped with 4 others, like the real set's density)."""
    import random

    rng = random.Random(7)
    for i in range(40):
        for n in range(3):
            touch(tmp_path / "Celeb-real" / f"id{i}_{n:04d}.mp4")
    for n in range(10):
        touch(tmp_path / "YouTube-real" / f"{n:05d}.mp4")
    fakes = set()
    for i in range(40):
        for j in rng.sample([k for k in range(40) if k != i], 4):
            fakes.add((i, j))
            touch(tmp_path / "Celeb-synthesis" / f"id{i}_id{j}_0000.mp4")
    (tmp_path / "List_of_testing_videos.txt").write_text("1 YouTube-real/00000.mp4\n")
    recs = CelebDFIndex(str(tmp_path), val_fraction=0.1, seed=seed).records()
    val = [r for r in recs if r.split == "val"]
    n_real, n_fake = sum(r.label == 0 for r in val), sum(r.label == 1 for r in val)
    assert n_fake >= 6 and n_real >= 8 and n_fake / n_real > 0.25  # both classes (a random 10 % of identities: 1 fake)
    assert 0.05 < len(val) / sum(r.split != "test" for r in recs) < 0.2
    unused = sum(r.split == "unassigned" for r in recs) / len(fakes)
    assert unused < 0.25  # fakes straddling train and validation are left out (no face in both)
    train_ids = {i for r in recs if r.split == "train" for i in (r.group, *r.extra.values())}
    val_ids = {i for r in val for i in (r.group, *r.extra.values())}
    assert not (train_ids & val_ids)


def test_celebdf_errors(tmp_path: Path) -> None:
    make_celebdf(tmp_path)
    (tmp_path / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.mp4\nbroken line here\n")
    with pytest.raises(DatasetError, match=r"List_of_testing_videos.txt:2"):
        CelebDFIndex(str(tmp_path)).records()
    (tmp_path / "List_of_testing_videos.txt").write_text("0 Celeb-real/id0_0000.mp4\n")
    with pytest.raises(DatasetError, match="wrong label"):
        CelebDFIndex(str(tmp_path)).records()
    (tmp_path / "List_of_testing_videos.txt").write_text("1 Celeb-real/id99_0000.mp4\n")
    with pytest.raises(DatasetError, match="missing, e.g. Celeb-real/id99_0000.mp4"):
        CelebDFIndex(str(tmp_path)).records()
    (tmp_path / "List_of_testing_videos.txt").unlink()
    with pytest.raises(DatasetError, match="official test list is missing"):
        CelebDFIndex(str(tmp_path)).records()
    with pytest.raises(DatasetError, match="not a Celeb-DF v2 root"):
        CelebDFIndex(str(tmp_path / "Celeb-real")).records()


# ---------------------------------------------------------------- FaceForensics++
def make_ffpp(root: Path, comp: str = "c23", splits: bool = True) -> None:
    ids = [f"{i:03d}" for i in range(10)]
    pairs = [[ids[i], ids[i + 1]] for i in range(0, 10, 2)]
    for vid in ids:
        touch(root / "original_sequences" / "youtube" / comp / "videos" / f"{vid}.mp4")
    for method in ("Deepfakes", "FaceSwap"):
        for a, b in pairs:
            touch(root / "manipulated_sequences" / method / comp / "videos" / f"{a}_{b}.mp4")
            touch(root / "manipulated_sequences" / method / comp / "videos" / f"{b}_{a}.mp4")
    if splits:
        sp = root / "splits"
        sp.mkdir()
        (sp / "train.json").write_text(json.dumps(pairs[:3]))
        (sp / "val.json").write_text(json.dumps(pairs[3:4]))
        (sp / "test.json").write_text(json.dumps(pairs[4:]))


def test_ffpp_index(tmp_path: Path) -> None:
    make_ffpp(tmp_path)
    recs = FaceForensicsIndex(str(tmp_path), "c23", ["Deepfakes", "FaceSwap"]).records()
    assert len(recs) == 10 + 2 * 10
    by_id = {r.video_id: r for r in recs}
    assert by_id["original/000"].label == 0 and by_id["original/000"].split == "train"
    assert by_id["Deepfakes/007_006"].label == 1 and by_id["Deepfakes/007_006"].split == "val"
    assert by_id["FaceSwap/008_009"].split == "test" and by_id["FaceSwap/008_009"].method == "FaceSwap"
    counts = {s: sum(r.split == s for r in recs) for s in ("train", "val", "test")}
    assert counts == {"train": 6 + 12, "val": 2 + 4, "test": 2 + 4}


def test_ffpp_raw_c0_and_drawn_splits(tmp_path: Path) -> None:
    make_ffpp(tmp_path, comp="c0", splits=False)
    recs = FaceForensicsIndex(str(tmp_path), "raw", ["Deepfakes"]).records()
    assert len(recs) == 20
    for r in recs:  # a fake lands with both of its source videos
        if r.label:
            a, b = r.video_id.split("/")[1].split("_")
            splits = {x.split for x in recs if x.video_id in (f"original/{a}", f"original/{b}")}
            assert splits == {r.split}


def test_ffpp_errors(tmp_path: Path) -> None:
    make_ffpp(tmp_path)
    with pytest.raises(DatasetError, match="compression 'c99'"):
        FaceForensicsIndex(str(tmp_path), "c99")
    with pytest.raises(DatasetError, match="unknown method 'DeepFaceLab'"):
        FaceForensicsIndex(str(tmp_path), methods=["DeepFaceLab"])
    with pytest.raises(DatasetError, match="no c40/videos folder"):
        FaceForensicsIndex(str(tmp_path), "c40", ["Deepfakes"]).records()
    with pytest.raises(DatasetError, match="method folder for Face2Face is missing"):
        FaceForensicsIndex(str(tmp_path), "c23", ["Face2Face"]).records()
    (tmp_path / "splits" / "val.json").write_text("{not json")
    with pytest.raises(DatasetError, match="val.json: not valid JSON"):
        FaceForensicsIndex(str(tmp_path), "c23", ["Deepfakes"]).records()
    (tmp_path / "splits" / "val.json").write_text('{"pairs": 1}')
    with pytest.raises(DatasetError, match="expected a JSON list of pairs"):
        FaceForensicsIndex(str(tmp_path), "c23", ["Deepfakes"]).records()
    (tmp_path / "splits" / "val.json").write_text('[["000", "007"]]')
    with pytest.raises(DatasetError, match="video 000 is in both train and val"):
        FaceForensicsIndex(str(tmp_path), "c23", ["Deepfakes"]).records()
    with pytest.raises(DatasetError, match="not a FaceForensics\\+\\+ root"):
        FaceForensicsIndex(str(tmp_path / "splits")).records()


# ---------------------------------------------------------------- VoxCeleb / TaiChi
def test_vox_index(tmp_path: Path) -> None:
    for p in range(6):
        for n in range(2):
            frames = tmp_path / "train" / f"id{p}#yt{n}#000{n}#0100.mp4"
            touch(frames / "0000000.png")
            touch(frames / "0000001.png")
    touch(tmp_path / "test" / "id9#ytx#0#10.mp4")
    recs = VoxIndex(str(tmp_path), val_fraction=0.34, seed=0).records()
    assert len(recs) == 13
    assert {r.label for r in recs} == {0}
    assert next(r for r in recs if r.split == "test").group == "id9"
    g = splits_of(recs)
    assert g["val"] and not (g["train"] & g["val"])
    assert all(r.group == r.video_id.split("/")[1].split("#")[0] for r in recs)
    with pytest.raises(DatasetError, match="expected train/ and/or test/"):
        VoxIndex(str(tmp_path / "train")).records()


def test_group_split_properties() -> None:
    groups = [f"g{i}" for i in range(100)]
    a = group_split(groups, 0.1, 0.2, seed=0)
    assert a == group_split(list(reversed(groups)), 0.1, 0.2, seed=0)
    assert sum(v == "val" for v in a.values()) == 10 and sum(v == "test" for v in a.values()) == 20
    assert a != group_split(groups, 0.1, 0.2, seed=1)
