"""Convolutional traces (seed 002): the EM recovers a known kernel, the fingerprint detector fits, saves safely,
reloads to the same scores, and ``forgelab fingerprint`` writes its table and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from common.errors import CheckpointError, ConfigError
from detection.models import ConvTraceDetector
from detection.traces import em_kernels, fingerprints, neighbours

BILINEAR = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]])


def interpolated(seed: int = 0, size: int = 64) -> torch.Tensor:
    """Random 8-bit images in which every other pixel (a quincunx) is the mean of its 4 neighbours: those pixels
    follow the EM's model M1 with the bilinear kernel exactly, the others are outliers (Popescu and Farid's setting)."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (2, 3, size, size), generator=g).float()
    avg = torch.zeros_like(raw)
    avg[..., 1:-1, 1:-1] = (raw[..., :-2, 1:-1] + raw[..., 2:, 1:-1] + raw[..., 1:-1, :-2] + raw[..., 1:-1, 2:]) / 4
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = raw.clone()
    odd = (yy + xx) % 2 == 1
    out[..., odd] = avg[..., odd]
    return out.round()


def test_em_recovers_the_interpolation_kernel() -> None:
    images = interpolated()
    k = em_kernels(images, 3)
    assert k.shape == (2, 3, 9)
    assert torch.allclose(k.view(2, 3, 3, 3), BILINEAR.expand(2, 3, 3, 3), atol=2e-3)  # every image and channel
    # a 5x5 window has other exact predictors; whichever EM finds predicts the interpolated pixels exactly
    k5 = em_kernels(images, 5)
    x, y = neighbours(images, 5)
    keep = [i for i in range(25) if i != 12]
    pred = torch.bmm(k5.flatten(0, 1)[:, keep][:, None], x)[:, 0]
    residual = (y - pred).abs().view(2 * 3, 60, 60)[:, 1::2, ::2]  # rows with odd index: pixels (odd, even)
    assert residual.median() < 0.6  # rounding to integers only
    assert fingerprints(images, 4).shape == (2, 3 * 15)
    with pytest.raises(ValueError, match="smaller than"):
        em_kernels(torch.zeros(1, 3, 2, 2), 3)


def test_fingerprint_detector_fits_saves_and_reloads(tmp_path: Path) -> None:
    from detection.loading import load_detector

    torch.manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(6, 3, 36, 36), 5, 1) * 0.8 + 0.1  # 32 px, blurred: "fake"
    noisy = torch.rand(6, 3, 32, 32)  # white noise: "real"
    video = torch.cat([noisy, smooth])[:, None]  # 12 clips of 1 frame
    det = ConvTraceDetector(kernel=3, classifier="knn", neighbours=3, size=32)
    with pytest.raises(ConfigError, match="not been fitted"):
        det(video)
    feats = det.forward_features(video).flatten(1)
    assert feats.shape == (12, 24)
    labels = torch.tensor([0] * 6 + [1] * 6)
    det.fit(feats, labels)
    p = det(video).softmax(1)[:, 1]
    assert (p[6:].min() > 0.5) and (p[:6].max() < 0.5)  # separable: blurred vs white noise
    path = det.save(tmp_path / "traces.pt")
    loaded = load_detector(path, "cpu")
    assert loaded.spec.size == 32 and loaded.module.describe()["name"].startswith("Convolutional traces")
    assert torch.allclose(loaded.module(video).softmax(1)[:, 1], p, atol=1e-6)  # refitted from the stored fingerprints
    with pytest.raises(ConfigError, match="no spatial map"):
        loaded.module.explain(video[:1])
    bad = tmp_path / "bad.pt"
    torch.save({"kind": "forgelab-conv-traces", "config": {"init_args": {"kernel": 3}}, "features": torch.zeros(2, 24),
                "labels": torch.zeros(2, dtype=torch.long)}, bad)  # fmt: skip
    with pytest.raises(CheckpointError, match="broken fingerprint file"):
        load_detector(bad, "cpu")  # one class only: cannot be refitted


def test_fingerprint_command_writes_table_files_and_reuses_its_cache(tmp_path: Path, face_clip: Path) -> None:
    from common.commands import main as cli_main

    out = tmp_path / "fp"
    args = ["fingerprint", "--dataset", "single", "--root", str(face_clip), "--self-blend", "--kernels", "3",
            "--classifiers", "knn", "lda", "--neighbours", "3", "--size", "48", "--train-clips", "4", "--clips", "4",
            "--iterations", "10", "--out", str(out)]  # fmt: skip
    assert cli_main(args) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [(r["kernel"], r["classifier"]) for r in rows] == [(3, "knn"), (3, "lda")]
    assert all(r["train_fingerprints"] == 8 and r["eval_fingerprints"] == 4 for r in rows)  # paired pseudo-fakes
    assert "| 3x3 | KNN |" in (out / "results.md").read_text()
    assert (out / "conv_traces_k3_lda.pt").is_file() and (out / "fingerprints_k3_train.pt").is_file()
    stamp = (out / "fingerprints_k3_train.pt").stat().st_mtime_ns
    assert cli_main(args) == 0
    assert (out / "fingerprints_k3_train.pt").stat().st_mtime_ns == stamp  # the cached fingerprints were reused
    again = tmp_path / "fp_again"
    assert cli_main([*args[:-1], str(again)]) == 0  # computed anew: the same seed draws the same crops
    assert json.loads((again / "results.json").read_text())[1]["clip_auc"] == rows[1]["clip_auc"]
    assert torch.equal(torch.load(again / "fingerprints_k3_train.pt", weights_only=True)["features"],
                       torch.load(out / "fingerprints_k3_train.pt", weights_only=True)["features"])  # fmt: skip


def test_compare_writes_one_row_per_detector(
    tmp_path: Path, face_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    from PIL import Image

    from common.commands import main as cli_main
    from common.weights import pretrained_dir
    from detection.models import ResNeXtLSTM
    from tests.test_detection import save_system

    torch.manual_seed(0)
    ours = save_system(tmp_path / "ours.ckpt", ResNeXtLSTM(trunk="resnet18", hidden_size=8), size=48, frames=2)
    meso = pretrained_dir() / "mesonet" / "Meso4_DF.h5"
    out = tmp_path / "cmp"
    args = ["compare", "--checkpoint", str(ours), str(meso), "--dataset", "single", "--root", str(face_clip),
            "--split", "val", "--self-blend", "--clips", "2", "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert cli_main(args) == 0
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert [r["file"] for r in rows] == ["ours.ckpt", "Meso4_DF.h5"]
    assert [r["frames_per_clip"] for r in rows] == ["2", "20"]  # each detector's own clips, the same videos
    assert all(r["clips"] == "2" and 0 <= float(r["clip_auc"]) <= 1 for r in rows)  # 1 real + 1 pseudo-fake clip
    assert rows[0]["train_seconds"] == "0.0" and rows[1]["train_seconds"] == ""  # recorded by a fit; published
    assert float(rows[0]["params_m"]) > 11 and float(rows[1]["params_m"]) < 0.1
    table = (out / "leaderboard.md").read_text()
    assert table.count("| ResNeXt-LSTM") == 1 and table.count("| Meso4") == 1 and "split `val`" in table
    assert Image.open(out / "leaderboard.png").size[0] > 400
    assert not list(out.glob(".*partial*"))
    assert cli_main([*args[:3], str(tmp_path / "missing.ckpt"), *args[4:]]) == 1  # every file is checked first
    assert "missing.ckpt" in capsys.readouterr().err


def test_a_fingerprint_does_not_depend_on_its_batch() -> None:
    images = torch.rand(5, 3, 40, 40) * 255
    alone = fingerprints(images[2:3], 3, iterations=5)  # stopped long before convergence
    together = fingerprints(images, 3, iterations=5, chunk=4)
    assert torch.allclose(alone, together[2:3], atol=1e-5)


def test_grid_fingerprints_are_each_tiles_own_fingerprint_in_row_major_order() -> None:
    crops = interpolated(seed=3, size=64) / 255  # [2, 3, 64, 64] in [0, 1]
    det = ConvTraceDetector(kernel=3, iterations=10, size=64, grid=2)
    prints = det.fingerprints(crops)
    assert prints.shape == (2, 4 * 3 * 8)
    tiles = [crops[..., y : y + 32, x : x + 32] for y in (0, 32) for x in (0, 32)]
    one = [ConvTraceDetector(kernel=3, iterations=10, size=32).fingerprints(t) for t in tiles]
    assert torch.allclose(prints, torch.cat(one, 1), atol=1e-4)  # the EM stops per batch, within its tolerance
    with pytest.raises(ConfigError, match="too small"):
        ConvTraceDetector(kernel=5, size=64, grid=8)


def test_option_files_give_the_same_run_as_the_command_line(tmp_path: Path, face_clip: Path) -> None:
    from common.commands import main as cli_main

    options = {"dataset": "single", "root": str(face_clip), "self_blend": True, "kernels": [3], "grid": 2,
               "classifiers": ["lda"], "size": 48, "train_clips": 2, "clips": 2, "iterations": 5}  # fmt: skip
    (tmp_path / "exp.yaml").write_text(json.dumps(options))  # JSON is YAML
    assert cli_main(["fingerprint", "--config", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "a")]) == 0
    flags = ["fingerprint", "--dataset", "single", "--root", str(face_clip), "--self-blend", "--kernels", "3", "--grid",
             "2", "--classifiers", "lda", "--size", "48", "--train-clips", "2", "--clips", "2", "--iterations", "5",
             "--out", str(tmp_path / "b")]  # fmt: skip
    assert cli_main(flags) == 0
    a, b = (json.loads((tmp_path / d / "results.json").read_text())[0] for d in "ab")
    assert a["clip_auc"] == b["clip_auc"] and a["train_fingerprints"] == b["train_fingerprints"] == 4
    (tmp_path / "bad.yaml").write_text("colour: blue\n")
    with pytest.raises(SystemExit) as exc:
        cli_main(["fingerprint", "--config", str(tmp_path / "bad.yaml")])
    assert exc.value.code == 64  # an unknown option in a file is a usage error
