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
from detection.models import LegacyResNeXtLSTM, PublishedResNeXtLSTM, ResNeXtLSTM
from detection.models.legacy import legacy_frames

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
        model.to_channels_last()
        assert model.is_channels_last() and torch.allclose(model(video), a, atol=1e-5)


def test_default_trunk_is_resnext50_and_timm_works() -> None:
    assert ResNeXtLSTM().feature_dim == 2048
    assert ResNeXtLSTM(trunk="timm:resnet10t", hidden_size=8)(torch.rand(1, 2, 3, 32, 32)).shape == (1, 2)


def test_pretrained_without_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import common.weights

    monkeypatch.setattr(common.weights, "search_dirs", lambda: [tmp_path])
    model = ResNeXtLSTM(pretrained=True)  # building never needs the file: only a fresh fit does
    with pytest.raises(CheckpointError, match=r"resnext50_32x4d-7cdf4587.pth: .*put resnext50_32x4d-7cdf4587.pth in"):
        model.init_pretrained()


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
    adapter = PublishedResNeXtLSTM(str(legacy_file))
    spec = adapter.input_spec
    assert spec.frames == 6 and legacy_frames(legacy_file) == 6
    assert (spec.size, spec.margin, spec.square, spec.colour) == (112, 1.0, False, "BGR")  # as it was trained
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
        mean, std = torch.tensor(spec.mean).view(1, 1, 3, 1, 1), torch.tensor(spec.std).view(1, 1, 3, 1, 1)
        rgb_fed = adapter.model((small - mean) / std)[1][0]
        assert not torch.allclose(rgb_fed, ref, atol=1e-3)  # feeding RGB would shift the output
        other = torch.rand(2, 6, 3, 80, 80)
        alone = [adapter(other[i : i + 1])[0] for i in range(2)]
        three = adapter(torch.cat([video, other]))
        for got, want in zip(three, [ours, *alone]):  # every video of a batch scores as it does alone
            assert torch.allclose(got, want, atol=1e-5)
        assert not torch.allclose(alone[0], alone[1], atol=1e-3)  # and the videos really score differently


def test_legacy_file_errors(tmp_path: Path) -> None:
    bad_name = tmp_path / "weights.pt"
    torch.save({}, bad_name)
    with pytest.raises(CheckpointError, match="not a published file name"):
        PublishedResNeXtLSTM(str(bad_name))
    html = tmp_path / "model_90_acc_20_frames_final_data.pt"
    html.write_text("<html><body>Sign in to Google Drive</body></html>")
    with pytest.raises(CheckpointError, match="HTML page"):
        PublishedResNeXtLSTM(str(html))
    wrong = tmp_path / "model_90_acc_40_frames_x.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(CheckpointError, match="do not match the published ResNeXt-LSTM state dict"):
        PublishedResNeXtLSTM(str(wrong))


# ---------------------------------------------------------------- self-blending
def test_self_blend_changes_only_inside_the_mask(sample_frames: np.ndarray) -> None:
    from common.faces import FaceExtractor, crop_square

    ex = FaceExtractor(crop_size=64, device="cpu")
    det = ex.detect(sample_frames[:4])
    track = ex.build_track(np.arange(4), det, (176, 144), "x")
    crops = np.stack([crop_square(f, b, 64) for f, b in zip(sample_frames[:4], track.crop_boxes)])
    video = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    blend = SelfBlend(target_prob=0.5)
    sides = set()
    for seed in range(8):
        fake, mask, base = blend(video, track.crop_landmarks(64), np.random.default_rng(seed))
        inside = mask.expand_as(video) > 0
        assert inside.any() and (~inside).any()
        assert torch.equal(fake[~inside], base[~inside])  # untouched outside the mask
        assert (fake - base).abs()[inside].mean() > 0.003  # really changed inside
        assert mask[:, 0, 26:38, 26:38].mean() > 0.2 and mask[:, 0, :3, :3].max() == 0  # the face, not the corners
        sides.add(torch.equal(base, video))  # the face or its surroundings is the transformed side
    assert sides == {True, False}
    ratios = {round(float(SelfBlend().sample(np.random.default_rng(i))["ratio"]), 2) for i in range(60)}
    assert min(ratios) <= 0.25 and 1.0 in ratios  # SBI's blend ratios, low ones included


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
    paired = VideoDataModule(SingleVideoIndex(str(ROOT / "assets" / "carphone_pristine.mp4")), clip_len=3, size=48,
                             batch_size=2, num_workers=0, faces_on_the_fly=True, repeats=2,
                             self_blend=SelfBlend(paired=True))  # fmt: skip
    paired.setup("fit")
    train = next(iter(paired.train_dataloader()))
    assert train["label"].tolist() == [0, 1, 0, 1] and train["video"].shape[0] == 4  # each real clip with its fake
    assert torch.equal(train["frame_index"][0], train["frame_index"][1])  # the same frames
    assert train["video_id"][1] == train["video_id"][0] + "#selfblend"


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


# ---------------------------------------------------------------- detect / evaluate
def test_detect_legacy_file_matches_reference(legacy_file: Path, sample_video: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from common.commands import main as cli_main
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
    assert result["verdict"] in ("REAL", "FAKE", "INCONCLUSIVE") and 50 <= result["confidence"] <= 100
    assert result["faces_found"] == 18 and result["frames_face_interpolated"] == 0  # every scored frame detected
    # the reference: last frame of each clip, cut as the published project did (the face box itself, no margin,
    # stretched to 112x112), through the independent forward
    model = PublishedResNeXtLSTM(str(legacy_file)).model
    ex = FaceExtractor(crop_size=112, margin=1.0, square=False, device="cpu")
    plan = clip_plan(120, 6, 3)
    with VideoReader(sample_video) as r:
        track = ex.extract(r, sorted({i for c in plan for i in c}))
    boxes = track.crop_boxes
    assert np.abs((boxes[:, 2] - boxes[:, 0]) - (track.boxes[:, 2] - track.boxes[:, 0])).max() <= 1  # no margin
    assert ((boxes[:, 2] - boxes[:, 0]) != (boxes[:, 3] - boxes[:, 1])).any()  # not squared: stretched
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
    from common.commands import main as cli_main

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
    from common.commands import main as cli_main

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


def save_system(path: Path, detector: torch.nn.Module, **spec: object) -> Path:
    """A DetectionSystem checkpoint as a fit writes it (input spec included), without training."""
    import lightning.pytorch as pl

    from detection.system import DetectionSystem

    system = DetectionSystem(detector=detector)
    system.detector.input_spec = system.detector.input_spec.replace(**spec)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, max_steps=0, accelerator="cpu")
    trainer.strategy.connect(system)
    trainer.save_checkpoint(path)
    return path


def test_detect_with_our_checkpoint_uses_its_spec(sample_video: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from common.commands import main as cli_main
    from common.faces import FaceExtractor
    from common.video import VideoReader
    from detection.loading import load_detector
    from detection.predict import clip_plan

    torch.manual_seed(0)
    ckpt = save_system(tmp_path / "ours.ckpt", ResNeXtLSTM(trunk="resnet18", hidden_size=8), size=48, frames=5,
                       stride=2, margin=1.5, aggregation="max")  # fmt: skip
    assert cli_main(["detect", str(sample_video), "--checkpoint", str(ckpt), "--clips", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["detector"]["kind"] == "forgelab" and result["detector"]["checkpoint"] == str(ckpt)
    assert result["detector"]["input_spec"]["size"] == 48
    assert result["frames_per_clip"] == 5 and result["frame_stride"] == 2
    assert [(c["start"], c["end"]) for c in result["clips"]] == [(0, 8), (111, 119)]  # 5 frames, every 2nd
    # the model's own output on the crops its spec asks for (margin 1.5, 48 px), aggregated by max
    model = load_detector(ckpt, "cpu").module
    ex = FaceExtractor(crop_size=48, margin=1.5, device="cpu")
    plan = clip_plan(120, 5, 2, stride=2)
    with VideoReader(sample_video) as r:
        track = ex.extract(r, sorted({i for c in plan for i in c}))
    pos = {int(f): i for i, f in enumerate(track.frame_indices)}
    clips = torch.stack([torch.from_numpy(track.crops[[pos[i] for i in c]]).permute(0, 3, 1, 2).float() / 255
                         for c in plan])  # fmt: skip
    with torch.no_grad():
        expected = model(clips).softmax(1)[:, 1].numpy()
    assert [c["p_fake"] for c in result["clips"]] == pytest.approx(expected.tolist(), abs=6e-5)
    assert result["p_fake"] == pytest.approx(float(expected.max()), abs=6e-5)
    assert abs(expected[0] - expected[1]) > 1e-4  # the two clips really differ


def test_load_from_checkpoint_needs_no_imagenet_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import common.weights
    from detection.system import DetectionSystem

    monkeypatch.setattr(common.weights, "search_dirs", lambda: [tmp_path / "nowhere"])
    ckpt = save_system(tmp_path / "pre.ckpt", ResNeXtLSTM(pretrained=True, hidden_size=8), size=64, frames=3)
    system = DetectionSystem.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    assert isinstance(system.detector, ResNeXtLSTM) and system.detector.input_spec.frames == 3
    assert system.detector.hparams.pretrained  # recorded, but only a fresh fit reads the ImageNet file
    with pytest.raises(CheckpointError, match="put resnext50_32x4d-7cdf4587.pth in"):
        system.detector.init_pretrained()


def test_checkpoint_cannot_name_an_arbitrary_class(tmp_path: Path) -> None:
    from common.errors import ConfigError
    from detection.models import build_detector

    with pytest.raises(ConfigError, match="unknown detector class 'subprocess.Popen'"):
        build_detector({"class_path": "subprocess.Popen", "init_args": {"args": ["true"]}})


def test_verdict_rules() -> None:
    from detection.predict import VerdictRules

    rules = VerdictRules(threshold=0.5, band=0.1, min_face_share=0.5)
    assert rules.decide(0.9, 1.0)[:2] == ("FAKE", "score") and rules.decide(0.2, 0.6)[:2] == ("REAL", "score")
    assert rules.decide(0.55, 1.0)[:2] == ("INCONCLUSIVE", "near_threshold")
    assert rules.decide(0.45, 1.0)[:2] == ("INCONCLUSIVE", "near_threshold")
    assert rules.decide(0.95, 0.3)[:2] == ("INCONCLUSIVE", "few_faces")
    assert VerdictRules(band=0.0).decide(0.5, 1.0)[0] == "REAL"  # p > threshold is fake: one rule everywhere
    assert binary_metrics([0.5, 0.5], [0, 1])["acc"] == 0.5  # accuracy applies the same rule


def test_few_detected_faces_are_inconclusive(legacy_file: Path, sample_frames: np.ndarray, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from common.commands import main as cli_main
    from common.encode import write_video

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (24, *sample_frames.shape[1:]), dtype=np.uint8)
    video = write_video(tmp_path / "few.mp4", [*sample_frames[:12], *noise], 25)  # a face in 12 of 36 frames
    out = tmp_path / "few_annotated.mp4"
    args = ["detect", str(video), "--checkpoint", str(legacy_file), "--clips", "1", "--frames", "36", "--json",
            "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert cli_main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "INCONCLUSIVE" and result["verdict_rule"] == "few_faces"
    assert result["faces_found"] == 12 and result["frames_used"] == 36 and result["faces_detected_share"] < 0.5
    assert result["frames_face_filled"] == 24 and result["threshold"] == 0.5 and result["min_face_share"] == 0.5
    frame = read_frames(out, [3])[0].astype(int)
    amber = (np.abs(frame - np.array([245, 165, 20])).sum(axis=-1) < 40).sum()
    assert amber > 50  # the verdict label is drawn in amber


def test_evaluate_never_drops_a_video(legacy_file: Path, noise_clip: Path, face_clip: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from common.commands import main as cli_main

    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    rows = [f"{face_clip},real,test", f"{noise_clip},fake,test", f"{broken},fake,test"]
    (tmp_path / "m.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(legacy_file), "--dataset", "csv", "--root", str(tmp_path / "m.csv"),
            "--clips", "2", "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert cli_main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["video_level"]["n"] == 3 and report["clip_level"]["n"] == 6  # every video counted
    failed = {Path(f["video_id"]).name: f for f in report["failed_videos"]}
    assert report["n_failed"] == 2 and set(failed) == {"noise", "broken"}
    assert "no face found" in failed["noise"]["reason"] and "not a readable video" in failed["broken"]["reason"]
    assert all(f["score"] == 0.5 for f in failed.values())
    assert "2 videos failed" in capsys.readouterr().out


def test_grad_cam_and_annotated_overlay(legacy_file: Path, face_clip: Path, tmp_path: Path) -> None:
    from common.commands import main as cli_main
    from detection.cam import grad_cam

    adapter = PublishedResNeXtLSTM(str(legacy_file))
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
