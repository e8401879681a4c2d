"""Perturbations (each changes the video as specified; level 0 is the identity), the robustness report (every
detector x perturbation x level cell) and its resumption (finished cells and videos are not recomputed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from common.encode import write_video
from common.errors import ConfigError
from common.perturb import DEFAULT_SUITE, Perturbation, load_suite, perturb_frames, perturb_video
from common.video import VideoReader

ROOT = Path(__file__).resolve().parent.parent
MESONET = ROOT / "pretrained" / "mesonet"


def read_all(path: Path) -> np.ndarray:
    with VideoReader(path) as r:
        return r.read(list(range(r.info.num_frames)))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def laplacian_var(frames: np.ndarray) -> float:
    g = frames.astype(np.float64).mean(-1)
    lap = g[:, 1:-1, 1:-1] * 4 - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
    return float(lap.var())


@pytest.fixture(scope="module")
def frames(sample_frames: np.ndarray) -> np.ndarray:
    return sample_frames[:16]


def test_the_shipped_table_is_the_default() -> None:
    assert yaml.safe_load((ROOT / "experiments/robustness/deeperforensics.yaml").read_text()) == DEFAULT_SUITE
    names = [p.name for p in load_suite()]
    assert names == ["saturation", "contrast", "noise", "blur", "downscale", "jpeg", "h264", "h264_2gen"]
    assert all(len(p.levels) == 5 for p in load_suite())


@pytest.mark.parametrize("name", list(DEFAULT_SUITE))
def test_level_zero_is_the_identity(name: str, frames: np.ndarray) -> None:
    p = load_suite(only=[name])[0]
    assert p.apply(frames, 0, np.random.default_rng(0)) is frames
    changed = p.apply(frames, 1, np.random.default_rng(0), fps=29.97)
    assert changed.shape == frames.shape and changed.dtype == np.uint8
    assert np.abs(changed.astype(int) - frames).mean() > 0.5


def test_contrast_and_saturation_follow_their_definitions(frames: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    out = perturb_frames(frames, "contrast", 0.6, rng)
    assert np.abs(out.astype(int) - np.floor(frames * np.float32(0.6)).astype(int)).max() <= 1
    grey = perturb_frames(frames, "saturation", 0.0, rng).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 1 and np.abs(grey[..., 1] - grey[..., 2]).max() <= 1
    chroma = frames.astype(np.float64) - frames.mean(-1, keepdims=True)
    half = perturb_frames(frames, "saturation", 0.4, rng).astype(np.float64)
    ratio = np.abs(half - half.mean(-1, keepdims=True)).mean() / np.abs(chroma).mean()
    assert 0.3 < ratio < 0.5  # chroma deviations scaled by the factor (rounding aside)


def test_noise_has_the_variance_of_its_level() -> None:
    flat = np.full((4, 64, 64, 3), 128, np.uint8)
    for var in (0.001, 0.01):
        out = perturb_frames(flat, "noise", var, np.random.default_rng(1)).astype(np.float64)
        luma = out @ np.array([0.299, 0.587, 0.114])
        expected = np.sqrt(var) * 255 / (219 / 255)  # N(0, var) on studio-range luma, in 0-255 full range
        assert abs(luma.std() - expected) / expected < 0.1


def test_blur_downscale_and_jpeg_remove_detail_monotonically(frames: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    blur = load_suite(only=["blur"])[0]
    sharp = [laplacian_var(blur.apply(frames, lv, rng)) for lv in range(6)]
    assert all(a > b for a, b in zip(sharp, sharp[1:])), sharp
    down = load_suite(only=["downscale"])[0]
    assert laplacian_var(down.apply(frames, 1, rng)) < 0.2 * sharp[0]
    for kind in ("downscale", "jpeg"):  # (un-antialiased down-scaling aliases: detail alone is not monotonic)
        p = load_suite(only=[kind])[0]
        quality = [psnr(p.apply(frames, lv, rng), frames) for lv in range(1, 6)]
        assert all(a > b for a, b in zip(quality, quality[1:])), (kind, quality)


def test_h264_crf40_is_smaller_and_worse_than_crf30(frames: np.ndarray, tmp_path: Path) -> None:
    src = write_video(tmp_path / "src.mp4", frames, 29.97, lossless=True)
    h264 = load_suite(only=["h264"])[0]
    low, high = perturb_video(src, tmp_path / "crf30.mp4", h264, 1), perturb_video(src, tmp_path / "crf40.mp4", h264, 5)
    assert high.stat().st_size < low.stat().st_size
    assert psnr(read_all(high), frames) < psnr(read_all(low), frames)
    twice = perturb_video(src, tmp_path / "twice.mp4", load_suite(only=["h264_2gen"])[0], 5)
    assert psnr(read_all(twice), frames) < psnr(read_all(high), frames)
    assert not list(tmp_path.glob("*.tmp*")) and not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_frame_wise_perturbations_are_stored_exactly(frames: np.ndarray, tmp_path: Path) -> None:
    src = write_video(tmp_path / "src.mp4", frames[:, :143, :175], 29.97, lossless=True)  # odd sides too
    p = load_suite(only=["noise"])[0]
    out = read_all(perturb_video(src, tmp_path / "noise.mp4", p, 3, seed=5))
    expected = p.apply(read_all(src), 3, np.random.default_rng(5))
    assert out.shape == expected.shape and np.array_equal(out, expected)


def test_bad_tables_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("wobble: {kind: wobble, levels: [1, 2]}\n")
    with pytest.raises(ConfigError, match="kind must be one of"):
        load_suite(bad)
    with pytest.raises(ConfigError, match="no perturbation named nope"):
        load_suite(only=["nope"])
    with pytest.raises(ConfigError, match="levels 0-2, not 3"):
        Perturbation("x", "blur", (3, 5)).param(3)


def test_clip_augment_applies_the_same_perturbations() -> None:
    import torch

    from common.augment import ClipAugment

    clip = torch.rand(4, 3, 32, 32)
    aug = ClipAugment(hflip=0, brightness=0, contrast=0, saturation=0, perturb_prob=1.0, perturb_only=("blur",))
    out, params = aug(clip, np.random.default_rng(0))
    assert params["perturb"][0] == "blur" and 1 <= params["perturb"][1] <= 5
    u8 = (clip.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    blurred = load_suite(only=["blur"])[0].apply(u8, params["perturb"][1], np.random.default_rng(0))
    assert torch.allclose(out, torch.from_numpy(blurred).permute(0, 3, 1, 2).float() / 255)
    none, params = ClipAugment(hflip=0, perturb_prob=0.0)(clip, np.random.default_rng(0))
    assert params["perturb"] is None


# ----------------------------------------------------------------- the report, and resuming it
@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> Path:
    """A real 10-frame cut of the sample and two self-blended fakes of it (forgelab make-fakes)."""
    from common.commands import main as cli_main

    out = tmp_path_factory.mktemp("robust") / "data"
    code = cli_main(["make-fakes", "--dataset", "single", "--root", str(sample_video), "--from-split", "val",
                     "--method", "self-blend", "--variants", "2", "--segments", "3", "--split", "test",
                     "--out", str(out)])  # fmt: skip
    assert code == 0
    return out / "manifest.csv"


def suite_file(tmp_path: Path) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text("blur: {kind: blur, levels: [9, 21]}\nh264: {kind: h264, levels: [30, 45]}\n")
    return path


def robustness_args(manifest: Path, tmp_path: Path) -> list[str]:
    return ["robustness", "--checkpoint", str(MESONET / "Meso4_DF.h5"), str(MESONET / "MesoInception_DF.h5"),
            "--dataset", "csv", "--root", str(manifest), "--suite", str(suite_file(tmp_path)), "--clips", "2",
            "--out", str(tmp_path / "out")]  # fmt: skip


def test_report_has_every_cell_and_resumes(tiny_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    import detection.protocol
    from common.commands import main as cli_main

    real_score = detection.protocol.score_split
    calls: list[int] = []

    def interrupted(*args: object, **kwargs: object) -> object:
        if len(calls) == 5:
            raise KeyboardInterrupt  # the run stops in the middle
        calls.append(1)
        return real_score(*args, **kwargs)

    monkeypatch.setattr(detection.protocol, "score_split", interrupted)
    assert cli_main(robustness_args(tiny_set, tmp_path)) != 0  # "interrupted", a non-zero exit
    out = tmp_path / "out"
    assert not (out / "robustness.json").exists()
    videos = sorted((out / "videos").rglob("*.mp4"))
    stamps = {p: p.stat().st_mtime_ns for p in videos}
    assert len(list((out / "cells").rglob("*.json"))) == 5

    calls.clear()
    monkeypatch.setattr(detection.protocol, "score_split", lambda *a, **k: calls.append(1) or real_score(*a, **k))
    assert cli_main(robustness_args(tiny_set, tmp_path)) == 0
    assert len(calls) == 2 * 5 - 5  # 2 detectors x (clean + 2 x 2 levels), 5 finished before
    assert all(p.stat().st_mtime_ns == stamps[p] for p in videos)  # perturbed videos reused, not rewritten
    report = json.loads((out / "robustness.json").read_text())
    assert [d["file"] for d in report["detectors"]] == ["Meso4_DF.h5", "MesoInception_DF.h5"]
    for d in report["detectors"]:
        assert set(d["cells"]) == {"clean", "blur", "h264"}
        assert set(d["cells"]["blur"]) == set(d["cells"]["h264"]) == {"1", "2"}
        for cells in d["cells"].values():
            for level, c in cells.items():
                assert c["clips"] == 9 * 2 and 0 <= c["auc"] <= 1 and 0 <= c["flips"] <= 1 and c["mean_abs_delta"] >= 0
                assert c["failed_videos"] == 0 or level == "2"  # blur 21 / crf 45 lose the 40-px face at times
        assert d["cells"]["clean"]["0"]["mean_abs_delta"] == 0 and d["cells"]["clean"]["0"]["flips"] == 0
        assert (out / f"robustness_{d['key']}.png").stat().st_size > 5000
    assert report["timing"]["videos_reused"] == len(videos) == 9 * 2  # blur's, made before the interruption
    assert report["timing"]["videos_made"] == 9 * 2  # h264's
    md = (out / "robustness.md").read_text()
    assert "| blur |" in md and "| h264 |" in md and "MesoInception4" in md

    calls.clear()  # a third run scores nothing
    assert cli_main(robustness_args(tiny_set, tmp_path)) == 0 and not calls


def test_a_folder_made_with_other_settings_is_refused(tiny_set: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    from common.commands import main as cli_main

    args = ["robustness", "--checkpoint", str(MESONET / "Meso4_DF.h5"), "--dataset", "csv", "--root", str(tiny_set),
            "--only", "contrast", "--clips", "2", "--out", str(tmp_path / "out")]  # fmt: skip
    assert cli_main(args) == 0
    assert cli_main([*args, "--clips", "3"]) != 0
    assert "made with clips=2, not 3: use another --out" in capsys.readouterr().err
    table = tmp_path / "other.yaml"
    table.write_text("contrast: {kind: contrast, levels: [0.5]}\n")
    assert cli_main([*args, "--suite", str(table)]) != 0
    assert "holds perturbation 'contrast' made with" in capsys.readouterr().err


def test_unlabelled_videos_get_p_fake_and_flips(face_clip: Path, tmp_path: Path) -> None:
    from common.commands import main as cli_main

    args = ["robustness", str(face_clip), "--checkpoint", str(MESONET / "Meso4_DF.h5"), "--only", "contrast",
            "--clips", "2", "--out", str(tmp_path / "out")]  # fmt: skip
    assert cli_main(args) == 0
    report = json.loads((tmp_path / "out" / "robustness.json").read_text())
    cells = report["detectors"][0]["cells"]
    assert set(cells["contrast"]) == {"1", "2", "3", "4", "5"}
    assert cells["contrast"]["5"]["auc"] is None and 0 <= cells["contrast"]["5"]["mean_p_fake"] <= 1
    assert "mean p(fake)" in (tmp_path / "out" / "robustness.md").read_text()


def test_bad_robustness_arguments(face_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from common.commands import main as cli_main

    base = ["robustness", "--checkpoint", str(MESONET / "Meso4_DF.h5"), "--out", str(tmp_path / "o")]
    assert cli_main(base) != 0
    assert "either VIDEO files or --dataset/--root" in capsys.readouterr().err
    assert cli_main([*base, str(face_clip), "--only", "wobble"]) != 0
    assert "no perturbation named wobble" in capsys.readouterr().err
