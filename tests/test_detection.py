"""The ResNeXt-LSTM detector: model, published-checkpoint compatibility, self-blending, metrics, configs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from common.errors import CheckpointError
from common.selfblend import SelfBlend
from common.video import probe, read_frames
from detection.metrics import aggregate, binary_metrics, confident_mean
from detection.models import LegacyResNeXtLSTM, ResNeXtLSTM
from detection.models.legacy import legacy_frames, load_legacy

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- our model
def test_model_shapes_gradients_no_nans() -> None:
    torch.manual_seed(0)
    model = ResNeXtLSTM(trunk="resnet18", hidden_size=16, head="mean")
    video = torch.rand(2, 3, 3, 32, 32)
    logits = model(video)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_model_runs_over_time_and_channels_last() -> None:
    torch.manual_seed(0)
    model = ResNeXtLSTM(trunk="resnet18", hidden_size=16).eval()
    video = torch.rand(1, 4, 3, 32, 32)
    changed = video.clone()
    changed[:, 0] = torch.rand(3, 32, 32)
    with torch.no_grad():
        a, b = model(video), model(changed)
        assert not torch.allclose(a, b)  # unlike the published model, early frames matter
        model.trunk.to(memory_format=torch.channels_last)
        assert torch.allclose(model(video), a, atol=1e-5)


def test_default_trunk_is_resnext50_and_timm_works() -> None:
    assert ResNeXtLSTM().feature_dim == 2048
    assert ResNeXtLSTM(trunk="timm:resnet10t", hidden_size=8)(torch.rand(1, 2, 3, 32, 32)).shape == (1, 2)


def test_pretrained_without_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pretrained

    monkeypatch.setattr(pretrained, "search_dirs", lambda: [tmp_path])
    with pytest.raises(CheckpointError, match=r"resnext50_32x4d-7cdf4587.pth: .*put resnext50_32x4d-7cdf4587.pth in"):
        ResNeXtLSTM(pretrained=True)


# ---------------------------------------------------------------- published model
def published_keys() -> dict[str, tuple[int, ...]]:
    """The published state dict written out independently from torchvision's ResNeXt50 (spec section 1)."""
    net = torchvision.models.resnext50_32x4d()
    names = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    keys = {}
    for k, v in net.state_dict().items():
        head, _, rest = k.partition(".")
        if head in names:
            keys[f"model.{names[head]}.{rest}"] = tuple(v.shape)
    keys.update({"lstm.weight_ih_l0": (8192, 2048), "lstm.weight_hh_l0": (8192, 2048),
                 "linear1.weight": (2, 2048), "linear1.bias": (2,)})  # fmt: skip
    return keys


def test_legacy_keys_and_shapes_match_published() -> None:
    model = LegacyResNeXtLSTM()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == published_keys()
    n = sum(p.numel() for p in model.parameters())
    assert 56_000_000 < n < 57_000_000


def reference_logits(model: LegacyResNeXtLSTM, video_rgb: torch.Tensor) -> torch.Tensor:
    """Independent re-derivation of the published forward for ONE video: only its last frame matters.

    BGR 112x112 input normalised with the RGB statistics; the bias-free LSTM with zero state gives
    h = o * tanh(i * g) for the last frame; logits = linear1(h) with class 0 = FAKE.
    """
    frame = torch.nn.functional.interpolate(video_rgb[0, -1:], size=(112, 112), mode="bilinear", antialias=True,
                                            align_corners=False)[0]  # fmt: skip
    bgr = frame[[2, 1, 0]]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    feats = model.model(((bgr - mean) / std)[None]).mean(dim=(2, 3))[0]
    i, f, g, o = (model.lstm.weight_ih_l0 @ feats).chunk(4)
    h = torch.sigmoid(o) * torch.tanh(torch.sigmoid(i) * torch.tanh(g))
    return model.linear1.weight @ h + model.linear1.bias


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    model = LegacyResNeXtLSTM()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        model.linear1.weight.mul_(200)  # spread the scores so comparisons discriminate
    path = tmp_path_factory.mktemp("legacy") / "model_87_acc_6_frames_final_data.pt"
    torch.save(model.state_dict(), path)
    return path


def test_legacy_semantics_against_reference(legacy_file: Path) -> None:
    adapter = load_legacy(legacy_file)
    assert adapter.frames == 6 and legacy_frames(legacy_file) == 6
    torch.manual_seed(0)
    video = torch.rand(1, 6, 3, 80, 80)
    with torch.no_grad():
        ours = adapter(video)[0]
        ref = reference_logits(adapter.model, video)
        assert torch.allclose(ours, ref.flip(0), atol=1e-4)  # our index 1 = fake = their index 0
        changed = video.clone()
        changed[:, :-1] = torch.rand(1, 5, 3, 80, 80)
        assert torch.allclose(adapter(changed)[0], ours, atol=1e-5)  # only the last frame matters
        small = torch.nn.functional.interpolate(video[0], size=(112, 112), mode="bilinear", antialias=True,
                                                align_corners=False)[None]  # fmt: skip
        rgb_fed = adapter.model((small - adapter.mean) / adapter.std)[1][0]
        assert not torch.allclose(rgb_fed, ref, atol=1e-3)  # feeding RGB would shift the output
        two = adapter(torch.cat([video, changed.flip(1)]))
        assert torch.allclose(two[0], ours, atol=1e-5)  # videos never influence each other


def test_legacy_file_errors(tmp_path: Path) -> None:
    bad_name = tmp_path / "weights.pt"
    torch.save({}, bad_name)
    with pytest.raises(CheckpointError, match="not a published file name"):
        load_legacy(bad_name)
    html = tmp_path / "model_90_acc_20_frames_final_data.pt"
    html.write_text("<html><body>Sign in to Google Drive</body></html>")
    with pytest.raises(CheckpointError, match="HTML page"):
        load_legacy(html)
    wrong = tmp_path / "model_90_acc_40_frames_x.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(CheckpointError, match="not the published ResNeXt-LSTM state dict"):
        load_legacy(wrong)


# ---------------------------------------------------------------- self-blending
def test_self_blend_changes_only_inside_the_mask(sample_frames: np.ndarray) -> None:
    from common.faces import FaceExtractor, crop_square

    ex = FaceExtractor(crop_size=64, device="cpu")
    det = ex.detect(sample_frames[:4])
    track = ex.build_track(np.arange(4), det, (176, 144), "x")
    crops = np.stack([crop_square(f, b, 64) for f, b in zip(sample_frames[:4], track.crop_boxes)])
    video = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    fake, mask = SelfBlend()(video, track.crop_landmarks(64), np.random.default_rng(0))
    inside = mask.expand_as(video) > 0
    assert inside.any() and (~inside).any()
    assert torch.equal(fake[~inside], video[~inside])  # untouched outside the mask
    assert (fake - video).abs()[inside].mean() > 0.005  # really changed inside
    assert mask[:, 0, 24:40, 24:40].mean() > 0.5 and mask[:, 0, :3, :3].max() == 0  # the face, not the corners


def test_self_blend_in_the_data_module() -> None:
    from common.data import VideoDataModule
    from common.datasets import SingleVideoIndex

    dm = VideoDataModule(SingleVideoIndex(str(ROOT / "assets" / "carphone_pristine.mp4")), clip_len=3, size=48,
                         eval_clips=4, batch_size=4, num_workers=0, faces_on_the_fly=True,
                         self_blend=SelfBlend())  # fmt: skip
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["label"].tolist() == [0, 1, 0, 1]
    assert batch["video_id"] == ["carphone_pristine@val", "carphone_pristine@val#selfblend"] * 2
    assert batch["frame_index"].min() >= 90  # time-disjoint validation


# ---------------------------------------------------------------- metrics
def test_metrics_and_aggregation() -> None:
    m = binary_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert m["auc"] == pytest.approx(0.75) and m["acc"] == pytest.approx(0.75) and m["eer"] == pytest.approx(0.5)
    assert np.isnan(binary_metrics([0.2, 0.3], [0, 0])["auc"])
    scores, labels, ids = aggregate([0.2, 0.4, 0.9, 0.7], [0, 0, 1, 1], ["a", "a", "b", "b"], "mean")
    assert ids == ["a", "b"] and np.allclose(scores, [0.3, 0.8]) and labels.tolist() == [0, 1]
    assert aggregate([0.2, 0.4], [0, 0], ["a", "a"], "max")[0].tolist() == [0.4]
    assert confident_mean(np.array([0.9] * 12 + [0.1] * 3)) == pytest.approx(0.9)
    assert confident_mean(np.array([0.1] * 19 + [0.6])) == pytest.approx(0.1)
    assert confident_mean(np.array([0.5, 0.7])) == pytest.approx(0.6)


# ---------------------------------------------------------------- experiments, shrunk to CPU
def make_folder_dataset(root: Path, sample: Path) -> None:
    from tests.conftest import copy_video

    for i in range(3):
        copy_video(sample, root / "real" / f"r{i}.mp4")
        copy_video(sample, root / "fake" / f"f{i}.mp4")


@pytest.mark.parametrize("experiment", ["detector_sample", "detector_folder", "detector_csv", "detector_celebdf",
                                        "detector_ffpp_c23"])  # fmt: skip
def test_experiment_fast_dev_run(experiment: str, tmp_path: Path, face_clip: Path) -> None:
    from common.cli import main as cli_main
    from tests.test_datasets import make_celebdf, make_ffpp

    cfg = ROOT / "experiments" / f"{experiment}.yaml"
    args = ["fit", "--config", str(cfg), "--trainer.fast_dev_run=true", f"--run.save_dir={tmp_path}",
            "--data.init_args.num_workers=0", "--data.init_args.batch_size=2", "--data.init_args.size=32",
            "--data.init_args.clip_len=3", f"--data.init_args.cache_dir={tmp_path / 'cache'}",
            "--model.init_args.trunk=resnet18", "--model.init_args.pretrained=false",
            "--model.init_args.hidden_size=8", "--trainer.enable_progress_bar=false"]  # fmt: skip
    index = "--data.init_args.index.init_args."
    data = tmp_path / "data"
    if experiment == "detector_sample":
        args.append(f"{index}path={ROOT / 'assets' / 'carphone_pristine.mp4'}")
    elif experiment == "detector_folder":
        make_folder_dataset(data, face_clip)
        args += [f"{index}root={data}", f"{index}val_fraction=0.34", f"{index}test_fraction=0"]
    elif experiment == "detector_csv":
        make_folder_dataset(data, face_clip)
        rows = [f"real/r{i}.mp4,real,{'train' if i else 'val'}" for i in range(3)]
        rows += [f"fake/f{i}.mp4,fake,{'train' if i else 'val'}" for i in range(3)]
        (data / "m.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
        args.append(f"{index}path={data / 'm.csv'}")
    elif experiment == "detector_celebdf":
        make_celebdf(data)
        for p in data.rglob("*.mp4"):  # the index only listed names; give the tree real face video
            p.write_bytes(face_clip.read_bytes())
        args += [f"{index}root={data}", f"{index}val_fraction=0.3"]
    else:
        make_ffpp(data)
        for p in data.rglob("*.mp4"):
            p.write_bytes(face_clip.read_bytes())
        args += [f"{index}root={data}", f"{index}methods=[Deepfakes]"]
    assert cli_main(args) == 0
    assert list((tmp_path / "cache").rglob("crops.npy"))  # the experiment built its face cache first


# ---------------------------------------------------------------- detect / evaluate
def test_detect_legacy_file_matches_reference(legacy_file: Path, sample_video: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from common.cli import main as cli_main
    from common.faces import FaceExtractor
    from common.video import VideoReader
    from detection.predict import clip_plan

    out = tmp_path / "annotated.mp4"
    code = cli_main(["detect", str(sample_video), "--checkpoint", str(legacy_file), "--clips", "3", "--json",
                     "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames_per_clip"] == 6 and len(result["clips"]) == 3
    assert [c["start"] for c in result["clips"]] == [0, 57, 114]  # spread over the whole video
    assert result["verdict"] in ("REAL", "FAKE") and 50 <= result["confidence"] <= 100
    # the reference: last frame of each clip, face-cropped the same way, through the independent forward
    model = load_legacy(legacy_file).model
    ex = FaceExtractor(crop_size=112, device="cpu")
    plan = clip_plan(120, 6, 3)
    with VideoReader(sample_video) as r:
        track = ex.extract(r, sorted({i for c in plan for i in c}), detect_every=2)  # as detect does
    pos = {int(f): i for i, f in enumerate(track.frame_indices)}
    expected = []
    for c in plan:
        crop = torch.from_numpy(track.crops[pos[c[-1]]]).permute(2, 0, 1).float()[None, None] / 255
        with torch.no_grad():
            expected.append(torch.softmax(reference_logits(model, crop), 0)[0].item())  # their class 0 = fake
    assert [c["p_fake"] for c in result["clips"]] == pytest.approx(expected, abs=6e-5)  # JSON keeps 4 decimals
    assert max(expected) - min(expected) > 0.01  # the clips really differ
    info, src = probe(out), probe(sample_video)
    assert (info.num_frames, info.width, info.height) == (src.num_frames, src.width, src.height)
    assert info.fps == pytest.approx(src.fps, abs=0.01)


def test_detect_bad_inputs(legacy_file: Path, noise_clip: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from common.cli import main as cli_main

    assert cli_main(["detect", str(noise_clip), "--checkpoint", str(legacy_file), "--device", "cpu"]) == 2
    assert "no face found" in capsys.readouterr().err
    text = tmp_path / "x.mp4"
    text.write_text("nope")
    assert cli_main(["detect", str(text), "--checkpoint", str(legacy_file), "--device", "cpu"]) == 1
    assert "not a readable video" in capsys.readouterr().err
    corrupt = tmp_path / "model_1_acc_10_frames_x.pt"
    corrupt.write_bytes(legacy_file.read_bytes()[:5000])
    assert cli_main(["detect", str(noise_clip), "--checkpoint", str(corrupt)]) == 1
    err = capsys.readouterr().err
    assert "not a readable PyTorch checkpoint" in err and "Traceback" not in err
    out = tmp_path / "o.mp4"
    assert cli_main(["detect", str(noise_clip), "--checkpoint", str(legacy_file), "--out", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.glob(".o.*"))


def test_evaluate_writes_metrics_and_plots(legacy_file: Path, tmp_path: Path) -> None:
    from common.cli import main as cli_main

    out = tmp_path / "eval"
    code = cli_main(["evaluate", "--checkpoint", str(legacy_file), "--dataset", "folder", "--root",
                     str(ROOT / "assets"), "--split", "val", "--out", str(out)])  # fmt: skip
    assert code == 1  # assets/ is not a real/ + fake/ layout: a clear error, not a crash
    mp4 = ROOT / "assets" / "carphone_pristine.mp4"
    (tmp_path / "m.csv").write_text(f"path,label,split\n{mp4},real,test\n")
    manifest = str(tmp_path / "m.csv")
    code = cli_main(["evaluate", "--checkpoint", str(legacy_file), "--dataset", "csv", "--root", manifest,
                     "--self-blend", "--clips", "4", "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["clip_level"]["n"] == 4 and report["clip_level"]["n_fake"] == 2
    assert report["video_level"]["n"] == 2 and 0 <= report["video_level"]["auc"] <= 1
    for name in ("roc_clip", "roc_video", "confusion_video"):
        assert (out / f"{name}.png").stat().st_size > 1000


def test_detect_with_our_checkpoint(sample_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import lightning.pytorch as pl

    from common.cli import main as cli_main
    from detection.system import DetectionSystem

    system = DetectionSystem(trunk="resnet18", hidden_size=8)
    system.data_settings = {"clip_len": 5, "size": 48, "frame_stride": 1}
    system.hparams["_class_path"] = "detection.system.DetectionSystem"  # as LightningCLI stores it
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, max_steps=0)
    trainer.strategy.connect(system)
    ckpt = tmp_path / "ours.ckpt"
    trainer.save_checkpoint(ckpt)
    assert cli_main(["detect", str(sample_video), "--checkpoint", str(ckpt), "--clips", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["detector"] == {"kind": "forgelab", "checkpoint": str(ckpt), "input_size": 48}
    assert result["frames_per_clip"] == 5 and [c["start"] for c in result["clips"]] == [0, 115]
    system.eval()
    assert 0 <= result["p_fake"] <= 1


def test_grad_cam_and_annotated_overlay(legacy_file: Path, face_clip: Path, tmp_path: Path) -> None:
    from common.cli import main as cli_main
    from detection.cam import grad_cam

    adapter = load_legacy(legacy_file)
    heat = grad_cam(adapter, torch.rand(1, 3, 3, 112, 112))
    assert heat.shape == (3, 112, 112) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert heat[:2].max() == 0  # the published model only looks at the last frame
    plain, cam = tmp_path / "plain.mp4", tmp_path / "cam.mp4"
    base = ["detect", str(face_clip), "--checkpoint", str(legacy_file), "--clips", "1", "--device", "cpu"]
    assert cli_main([*base, "--out", str(plain)]) == 0
    assert cli_main([*base, "--out", str(cam), "--cam"]) == 0
    a, b = read_frames(plain, range(12)), read_frames(cam, range(12))
    diff = np.abs(a.astype(int) - b.astype(int)).max(axis=(1, 2, 3))
    assert diff.max() > 40  # the heatmap is drawn over the face (of the frames the published model looks at)
    assert cli_main([*base, "--cam"]) == 1  # --cam needs --out
