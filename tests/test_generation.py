"""The co-segmentation system: shapes, identity flow at init, gradients, checkpoint formats, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from common.errors import CheckpointError
from common.weights import read_checkpoint
from generation.checkpoints import build_modules, export_native, load_published
from generation.models.blocks import make_coordinate_grid
from generation.models.reconstruction import dense_flow, warp
from generation.system import SegmenterSystem

FIXTURE = Path(__file__).parent / "data" / "coseg_parity_A.pt"
TINY = {
    "num_segments": 3, "seg_block_expansion": 4, "seg_max_features": 16, "seg_num_blocks": 3,
    "rec_block_expansion": 4, "rec_max_features": 16, "rec_num_bottleneck_blocks": 1, "vgg": "random",
    "scales": (1, 0.5), "perceptual_weights": (10, 10, 0, 0, 0),
}  # fmt: skip


@pytest.fixture(scope="module")
def fx() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def test_shapes_and_dicts() -> None:
    system = SegmenterSystem(**TINY)
    x = torch.rand(2, 3, 32, 32)
    out = system(x, x.flip(-1))
    assert out["prediction"].shape == (2, 3, 32, 32) and out["deformed"].shape == (2, 3, 32, 32)
    assert out["visibility_maps"].shape == (2, 1, 8, 8)
    seg = out["seg_source"]
    assert seg["segmentation"].shape == (2, 4, 8, 8) and seg["shift"].shape == (2, 3, 2)
    assert seg["affine"].shape == (2, 3, 2, 2)
    assert torch.allclose(seg["segmentation"].sum(1), torch.ones(2, 8, 8), atol=1e-5)
    assert torch.isfinite(out["prediction"]).all() and out["prediction"].min() > 0 and out["prediction"].max() < 1


def test_identity_flow_at_initialisation() -> None:
    system = SegmenterSystem(**TINY).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        seg = system.segmentation_module(x)
        assert torch.allclose(seg["affine"], torch.eye(2).expand(2, 3, 2, 2))  # identity-initialised
        flow = dense_flow(seg, seg)
        features = system.reconstruction_module.encode(x)
        warped = warp(features, flow)
    assert torch.allclose(flow, make_coordinate_grid(8, 8).expand(2, 8, 8, 2), atol=1e-5)
    assert torch.allclose(warped, features, atol=1e-5)  # identical source and driving: nothing moves


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    system = SegmenterSystem(**TINY)
    with torch.no_grad():  # leave the identity init so the affine head's weights get a signal too
        system.segmentation_module.affine.weight.normal_(0, 0.01)
    x = torch.rand(2, 3, 32, 32)
    terms, _ = system.losses(x, torch.roll(x, 3, dims=-1))
    assert set(terms) == {"perceptual", "equivariance_shift", "equivariance_affine", "loss"}
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    for module in (system.segmentation_module, system.reconstruction_module):
        for name, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in system.perceptual.parameters())  # VGG stays frozen


def test_optimizer_groups() -> None:
    system = SegmenterSystem(**{**TINY, "lr_segmentation": 1e-3})
    opt = system.configure_optimizers()
    assert [g["name"] for g in opt.param_groups] == ["reconstruction", "segmentation"]
    assert opt.param_groups[1]["lr"] == 1e-3 and opt.defaults["betas"] == (0.5, 0.999)


# ---------------------------------------------------------------- checkpoints
def fixture_modules(fx: dict):
    return build_modules(fx["config"]["model_params"])


def test_native_and_fomm_formats_load(fx: dict, tmp_path: Path) -> None:
    native = tmp_path / "native.pth.tar"
    torch.save({"segmentation_module": fx["segmentation_module"], "reconstruction_module": fx["reconstruction_module"],
                "optimizer_reconstruction_module": {}, "epoch": 4}, native)  # fmt: skip
    fomm = tmp_path / "fomm.pth.tar"
    generator = dict(fx["fomm_format"]["generator"])
    generator["dense_motion_network.mask.weight"] = torch.zeros(11, 108, 7, 7)  # ignored, as the original
    torch.save({"generator": generator, "kp_detector": fx["fomm_format"]["kp_detector"], "epoch": 99}, fomm)
    outputs = []
    for path, fmt in ((native, "native"), (fomm, "fomm")):
        seg, rec = fixture_modules(fx)
        assert load_published(path, seg, rec) == fmt
        with torch.no_grad():
            outputs.append(seg.eval()(fx["inputs"]["source"])["shift"])
    assert torch.allclose(outputs[0], fx["outputs"]["seg_source"]["shift"], atol=1e-5)
    assert torch.equal(outputs[0], outputs[1])


def test_fomm_keypoint_only_warm_start(fx: dict, tmp_path: Path) -> None:
    kp = {k: v for k, v in fx["fomm_format"]["kp_detector"].items() if not k.startswith("semantic_seg.")}
    path = tmp_path / "vox-cpk.pth.tar"
    torch.save({"generator": fx["fomm_format"]["generator"], "kp_detector": kp}, path)
    seg, rec = fixture_modules(fx)
    with pytest.raises(CheckpointError, match="missing"):
        load_published(path, seg, rec)
    head = seg.segmentation.weight.clone()
    assert load_published(path, seg, rec, allow_missing_segmentation=True) == "fomm"
    assert torch.equal(seg.segmentation.weight, head)  # segmentation head initialised at random
    assert torch.equal(seg.shift.weight, fx["segmentation_module"]["shift.weight"])


def test_export_round_trip(fx: dict, tmp_path: Path) -> None:
    seg, rec = fixture_modules(fx)
    load_published_dict = {"segmentation_module": fx["segmentation_module"],
                           "reconstruction_module": fx["reconstruction_module"]}  # fmt: skip
    torch.save(load_published_dict, tmp_path / "a.pth")
    load_published(tmp_path / "a.pth", seg, rec)
    out = export_native(seg, rec, tmp_path / "exported.pth.tar", epoch=3)
    data = read_checkpoint(out)
    assert set(data) == {"segmentation_module", "reconstruction_module", "epoch"}
    for key, value in fx["reconstruction_module"].items():
        assert torch.equal(data["reconstruction_module"][key], value)


def test_lightning_checkpoint_exports_and_reloads(tmp_path: Path) -> None:
    import lightning.pytorch as pl

    system = SegmenterSystem(**TINY)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, max_steps=0)
    trainer.strategy.connect(system)
    ckpt = tmp_path / "ours.ckpt"
    trainer.save_checkpoint(ckpt)
    again = SegmenterSystem.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    assert again.hparams.num_segments == 3
    seg, rec = build_modules({"common_params": {"num_segments": 3, "num_channels": 3, "estimate_affine_part": True},
                              "segmentation_module_params": {"block_expansion": 4, "max_features": 16, "num_blocks": 3,
                                                             "temperature": 0.1, "scale_factor": 0.25},
                              "reconstruction_module_params": {"block_expansion": 4, "max_features": 16,
                                                               "num_down_blocks": 2, "num_bottleneck_blocks": 1,
                                                               "estimate_visibility": True}})  # fmt: skip
    assert load_published(ckpt, seg, rec) == "lightning"
    assert torch.equal(seg.shift.weight, system.segmentation_module.shift.weight)


def test_checkpoint_errors(fx: dict, tmp_path: Path) -> None:
    params = fx["config"]["model_params"]
    seg5 = build_modules({**params, "common_params": {**params["common_params"], "num_segments": 5}})
    native = tmp_path / "native.pth"
    torch.save({"segmentation_module": fx["segmentation_module"], "reconstruction_module": fx["reconstruction_module"]},
               native)  # fmt: skip
    with pytest.raises(CheckpointError, match="checkpoint has 10 segments, the configuration asks for 5"):
        load_published(native, *seg5)
    html = tmp_path / "vox-10segments.pth.tar"
    html.write_text("<!DOCTYPE html><html>Google Drive - quota exceeded</html>")
    with pytest.raises(CheckpointError, match="HTML page"):
        read_checkpoint(html)
    corrupt = tmp_path / "corrupt.pth.tar"
    corrupt.write_bytes(native.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(corrupt)
    other = tmp_path / "other.pth"
    torch.save({"model": {}}, other)
    with pytest.raises(CheckpointError, match="not a co-segmentation checkpoint"):
        load_published(other, *fixture_modules(fx))
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pth")


def test_missing_vgg_weights_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import common.weights

    monkeypatch.setattr(common.weights, "search_dirs", lambda: [tmp_path / "pretrained", tmp_path / "hub"])
    with pytest.raises(CheckpointError, match=r"vgg19-dcbb9e9d.pth.*put vgg19-dcbb9e9d.pth in .*pretrained or"):
        SegmenterSystem(**{**TINY, "vgg": "imagenet"})
