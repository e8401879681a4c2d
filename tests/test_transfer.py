"""MobileNet transfer learning (seed 004): a frozen backbone, bottlenecks cached once, a softmax layer fitted on the
cache, saved as a checkpoint that detect / evaluate / compare load like any other."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from common.errors import CheckpointError, ConfigError
from detection.models import MobileNetTransfer


def small(**kw: object) -> MobileNetTransfer:
    return MobileNetTransfer(**{"pretrained": False, "size": 64, **kw})


@pytest.mark.parametrize("bottleneck, width", [("pooled", 1024), ("logits", 1000)])
def test_bottleneck_shapes_and_a_frozen_backbone(bottleneck: str, width: int) -> None:
    torch.manual_seed(0)
    det = small(bottleneck=bottleneck).train()
    assert not det.backbone.training and det.training  # BatchNorm keeps its running statistics
    video = torch.rand(2, 3, 3, 64, 64)
    assert det.bottlenecks(video).shape == (6, width)
    logits = det(video)
    assert logits.shape == (2, 2)
    logits[:, 1].sum().backward()
    assert all(p.grad is None for p in det.backbone.parameters())  # frozen: only the softmax layer can learn
    assert det.head.weight.grad is not None


def test_the_softmax_layer_learns_separable_bottlenecks_in_a_few_steps() -> None:
    torch.manual_seed(0)
    det = small()
    x = torch.randn(200, 1024) * 5 + 3
    y = (x[:, 7] > 3).long()  # one coordinate carries the label
    losses = det.fit_head(x, y, steps=200)
    assert losses[-1] < 0.1 < losses[0]
    p = det.p_fake_frames(x)
    assert ((p > 0.5).long() == y).float().mean() > 0.97
    with pytest.raises(ConfigError, match="real and fake"):
        det.fit_head(x, torch.ones(200, dtype=torch.long))


def test_imagenet_weights_are_read_from_pretrained_or_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import save_file

    monkeypatch.setenv("FORGELAB_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    det = MobileNetTransfer(size=64)
    with pytest.raises(CheckpointError, match="mobilenetv1_100.ra4_e3600_r224_in1k.safetensors"):
        det.init_pretrained()
    torch.manual_seed(1)
    ref = MobileNetTransfer(
        pretrained=False, bottleneck="logits"
    ).backbone  # the file timm's hub holds: with classifier
    save_file(ref.state_dict(), tmp_path / "mobilenetv1_100.ra4_e3600_r224_in1k.safetensors")
    det.init_pretrained()
    assert torch.equal(det.backbone.conv_stem.weight, ref.conv_stem.weight)
    with pytest.raises(CheckpointError, match="no local ImageNet weights"):
        MobileNetTransfer(backbone="mobilenetv2_050", size=64).init_pretrained()


def test_transfer_command_fits_saves_and_detect_reads_the_file(tmp_path: Path, face_clip: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import json

    from common.commands import main as cli_main
    from detection.fingerprint import cached, evaluate
    from detection.loading import load_detector

    out = tmp_path / "tr"
    args = ["transfer", "--dataset", "single", "--root", str(face_clip), "--self-blend", "--random-weights",
            "--size", "64", "--train-clips", "4", "--clips", "4", "--steps", "20", "--out", str(out)]  # fmt: skip
    assert cli_main(args) == 0
    assert "softmax layer trained" in capsys.readouterr().out
    path = out / "mobilenet_transfer_mobilenetv1_100_random.pt"
    cache = out / "bottlenecks_mobilenetv1_100_pooled_random_train.pt"
    assert path.is_file() and cache.is_file()
    stored = torch.load(cache, weights_only=True)
    assert stored["features"].shape == (8, 1024) and stored["labels"].tolist().count(1) == 4  # paired pseudo-fakes
    loaded = load_detector(path, "cpu")
    assert isinstance(loaded.module, MobileNetTransfer) and loaded.spec.size == 64 and loaded.train_seconds > 0
    held = out / "bottlenecks_mobilenetv1_100_pooled_random_val.pt"
    prints = cached(held, torch.load(held, weights_only=True)["settings"], lambda: None)  # read back, never made
    saved = torch.load(path, weights_only=True)["report"]
    assert evaluate(loaded.module.p_fake_frames, prints)["clip_level"] == saved["clip_level"]  # the same scores
    assert cli_main(["detect", str(face_clip), "--checkpoint", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["detector"]["name"].startswith("MobileNet transfer") and "random" in report["detector"]["weights"]
