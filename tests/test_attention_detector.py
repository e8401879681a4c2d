"""The long-distance attention detector (seeds 000/003): shapes at the paper's 398/224 px and at tiny sizes, where
the maps land in Xception, gradients, what the temporal branch sees, weights from local files, detect --cam."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import CheckpointError
from detection.models import LongDistanceAttentionDetector
from detection.models.attention import land, pool_factor
from detection.models.xception import GuidedXception, gate, grid_sizes
from tests.test_detection import save_system

TINY_VIT = {"img_size": 64, "patch_size": 8, "embed_dim": 32, "num_heads": 2}


def tiny(**kw: object) -> LongDistanceAttentionDetector:
    """Xception at 70 px (block1 16x16, block2 8x8) guided by 8x8 maps of 64-px ViT embeddings."""
    args = {"size": 70, "vit_args": TINY_VIT, "latent_dim": 8, "pretrained_vit": False, **kw}
    return LongDistanceAttentionDetector(**args)


def test_xception_grids_match_the_spec_and_a_real_forward() -> None:
    assert {k: grid_sizes(398)[k] for k in ("block1", "block2", "block3", "block11", "block12")} == {
        "block1": 98, "block2": 49, "block3": 25, "block11": 25, "block12": 13}  # fmt: skip
    assert (grid_sizes(299)["block1"], grid_sizes(256)["block2"]) == (74, 32)  # spec Sec. 1.3 table
    net = GuidedXception()
    seen: dict[str, int] = {}
    for name in ("block1", "block2", "block3", "block12"):
        getattr(net.net, name).register_forward_hook(lambda m, i, o, n=name: seen.__setitem__(n, o.shape[-1]))
    with torch.no_grad():
        out = net(torch.rand(1, 3, 70, 70), {})
    assert seen == {k: grid_sizes(70)[k] for k in seen} == {"block1": 16, "block2": 8, "block3": 4, "block12": 2}
    assert out.shape == (1, 2048, 2, 2)


def test_full_size_shapes_and_where_the_maps_land() -> None:
    torch.manual_seed(0)
    model = LongDistanceAttentionDetector(pretrained_vit=False).eval()  # ViT-B/16 embeddings at 224, Xception at 398
    clip = torch.rand(1, 4, 3, 398, 398)  # 4 frames: tested frames 0 and 1
    with torch.no_grad():
        maps = model.attention(clip)
        features = model.forward_features(clip)
        logits = model.forward_head(features, 1, 4)
    assert maps["spatial"].shape == maps["temporal"].shape == (2, 4, 14, 14)
    assert features.shape == (2, 2048, 13, 13) and logits.shape == (1, 2)
    assert model.temporal_tokens.vit.patch_embed.proj.in_channels == 9  # the frame and its 2 residuals
    spatial = land(maps["spatial"], (98, 98))  # block1: each patch covers 7x7 feature cells
    assert spatial.shape == (2, 4, 98, 98)
    assert torch.equal(spatial[..., ::7, ::7], maps["spatial"])
    assert torch.equal(spatial, maps["spatial"].repeat_interleave(7, -1).repeat_interleave(7, -2))
    temporal = land(maps["temporal"], (49, 49))  # block2: 14x14 pooled 2x2 -> 7x7, each covering 7x7 cells
    pooled = torch.nn.functional.avg_pool2d(maps["temporal"], 2)
    assert temporal.shape == (2, 4, 49, 49) and torch.allclose(temporal[..., ::7, ::7], pooled)
    assert (pool_factor(14, 98), pool_factor(14, 49), pool_factor(14, 25)) == (1, 2, 0)
    spatial_only = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("temporal"))
    assert 22e6 < spatial_only < 24e6  # paper Table VII: spatial model 23.17 M (Xception 20.8 M + embeddings + U, t)


def test_maps_multiply_the_chosen_blocks() -> None:
    features, maps = torch.ones(1, 8, 2, 2), torch.tensor([[0.5, 2.0]]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    assert gate(features, maps)[0, :, 0, 0].tolist() == [0.5] * 4 + [2.0] * 4  # channel groups, one map each
    assert gate(features, maps, "residual")[0, :, 0, 0].tolist() == [1.5] * 4 + [3.0] * 4
    model = tiny(temporal=False).eval()
    clip = torch.rand(1, 3, 3, 70, 70)
    seen = {}
    model.backbone.net.block1.register_forward_hook(lambda m, i, o: seen.__setitem__("block1", o.clone()))
    model.backbone.net.block2.register_forward_hook(lambda m, i, o: seen.__setitem__("block2_in", i[0].clone()))
    with torch.no_grad():
        model.forward_features(clip)
        maps = land(model.attention(clip)["spatial"], (16, 16))
    assert torch.allclose(seen["block2_in"], gate(seen["block1"], maps), atol=1e-6)  # block2 reads F * A


def test_every_parameter_learns_and_sizes_must_land() -> None:
    torch.manual_seed(0)
    model = tiny()
    model(torch.rand(2, 4, 3, 70, 70)).sum().backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []
    deep = tiny(vit_depth=2, per_block=True, modules=2)  # one module per ViT block
    deep(torch.rand(1, 3, 3, 70, 70)).sum().backward()
    assert all(p.grad is not None for p in deep.parameters())
    with pytest.raises(ValueError, match="does not land exactly"):
        tiny(size=64)  # block1 15x15 is no multiple of the 8x8 patch grid
    assert tiny(size=64, resize="bilinear")(torch.rand(1, 3, 3, 64, 64)).shape == (1, 2)
    with pytest.raises(ValueError, match="too short"):
        tiny()(torch.rand(1, 2, 3, 70, 70))


def test_temporal_maps_see_the_residuals_of_their_own_window_only() -> None:
    torch.manual_seed(0)
    model = tiny().eval()
    clip = torch.rand(1, 5, 3, 70, 70)  # tested frames 0, 1, 2 read windows 0-2, 1-3, 2-4
    with torch.no_grad():
        before = model.attention(clip)
        changed = clip.clone()
        changed[0, 4] = torch.rand(3, 70, 70)  # only in the window of tested frame 2
        after = model.attention(changed)
        still = clip.clone()
        still[0, 1:3] += 0.1  # frames 1 and 2 move together: residual r^1 = I^2 - I^1 is unchanged
        shifted = model.attention(still)
    moved = [(after["temporal"][i] - before["temporal"][i]).abs().max().item() for i in range(3)]
    assert moved[0] == moved[1] == 0 and moved[2] > 1e-4
    assert torch.equal(after["spatial"], before["spatial"])  # frame 4 is not a tested frame
    assert not torch.allclose(shifted["temporal"][0], before["temporal"][0])  # the window of frame 0 changed: r^0
    assert torch.equal(shifted["spatial"][0], before["spatial"][0])
    res = tiny(temporal_input="residuals")
    assert res.temporal_tokens.vit.patch_embed.proj.in_channels == 6


def test_pretrained_files_are_read_from_pretrained_or_refused_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import timm
    from safetensors.torch import save_file

    monkeypatch.setenv("FORGELAB_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    model = tiny(pretrained_vit=True)
    with pytest.raises(CheckpointError, match="vit_base_patch16_224.augreg2_in21k_ft_in1k.safetensors.*not on this"):
        model.init_pretrained()
    # a ViT file in timm's format (class token, blocks, head) stands in for the published one
    torch.manual_seed(1)
    reference = timm.create_model("vit_base_patch16_224", pretrained=False, depth=1, **TINY_VIT)
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    save_file(state, str(tmp_path / "vit_base_patch16_224.augreg2_in21k_ft_in1k.safetensors"))
    model.init_pretrained()
    spatial, temporal = model.spatial_tokens.vit, model.temporal_tokens.vit
    assert torch.equal(spatial.patch_embed.proj.weight, state["patch_embed.proj.weight"])
    assert torch.equal(spatial.pos_embed, state["pos_embed"][:, 1:])  # the class token's slot dropped
    assert torch.equal(temporal.pos_embed, state["pos_embed"][:, 1:])
    w9 = temporal.patch_embed.proj.weight  # timm tiles the RGB kernel over 9 channels, scaled by 3/9
    assert torch.allclose(w9[:, 3:6], state["patch_embed.proj.weight"] / 3, atol=1e-6)
    with pytest.raises(CheckpointError, match="xception-43020ad28.pth.*not on this"):
        tiny(pretrained_vit=False, pretrained_backbone=True).init_pretrained()


def test_system_uses_the_papers_optimiser_and_logs_attention_images() -> None:
    from detection.system import DetectionSystem

    system = DetectionSystem(detector=tiny(), optimizer="sgd", lr=3e-4, lr_schedule="step", step_size=5, gamma=0.5)
    conf = system.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    assert (sched.step_size, sched.gamma, conf["lr_scheduler"]["interval"]) == (5, 0.5, "epoch")
    batch = {"video": torch.rand(3, 3, 3, 70, 70), "label": torch.tensor([0, 1, 0])}
    media = system.visualize(batch, "train")
    assert media["attention/spatial_attention"].shape == media["attention/temporal_attention"].shape == (3, 70, 210)
    assert system.detector.training  # back in training mode after drawing


def test_detect_draws_the_attention_maps(
    sample_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from common.commands import main as cli_main
    from common.video import read_frames

    torch.manual_seed(0)
    ckpt = save_system(tmp_path / "lda.ckpt", tiny(), size=70, frames=3, margin=1.3)
    base = ["detect", str(sample_video), "--checkpoint", str(ckpt), "--clips", "2", "--device", "cpu"]
    assert cli_main([*base, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames_per_clip"] == 3 and result["detector"]["name"].startswith("Long-distance attention")
    assert cli_main([*base[:-4], "--device", "cpu", "--json"]) == 0  # default clips: one scored frame each -> 16
    assert len(json.loads(capsys.readouterr().out)["clips"]) == 16
    plain, spatial, temporal = tmp_path / "plain.mp4", tmp_path / "spatial.mp4", tmp_path / "temporal.mp4"
    assert cli_main([*base, "--out", str(plain)]) == 0
    assert cli_main([*base, "--out", str(spatial), "--cam"]) == 0
    assert cli_main([*base, "--out", str(temporal), "--cam", "--cam-map", "temporal attention"]) == 0
    a, b, c = (read_frames(p, [0, 60]).astype(int) for p in (plain, spatial, temporal))
    assert np.abs(a - b).max() > 40 and np.abs(b - c).max() > 10  # two different maps drawn over the face
    assert cli_main([*base, "--out", str(tmp_path / "x.mp4"), "--cam", "--cam-map", "grad-cam"]) == 1
    assert "explains itself with spatial attention, temporal attention" in capsys.readouterr().err
