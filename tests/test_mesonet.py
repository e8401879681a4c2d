"""MesoNet (Meso4 / MesoInception4) against the authors' Keras model: every stored output of the original
network on the authors' test images and on seeded random inputs, within the fixture's tolerances (README in
tests/data/mesonet: sigmoid outputs max |d| <= 1e-5, every other array max |d| <= 2e-5 * max(1, max |ref|)).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import CheckpointError
from detection.models.mesonet import MesoNet, keras_variant, load_mesonet

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "data" / "mesonet"
WEIGHTS = ROOT / "pretrained" / "mesonet"
FILES = ["Meso4_DF", "Meso4_F2F", "MesoInception_DF", "MesoInception_F2F"]


def within(ours: np.ndarray, ref: np.ndarray, sigmoid: bool = False) -> float:
    """max |ours - ref| as a share of the fixture's tolerance (<= 1 passes)."""
    diff = float(np.abs(np.asarray(ours, np.float64) - np.asarray(ref, np.float64)).max())
    tol = 1e-5 if sigmoid else 2e-5 * max(1.0, float(np.abs(ref).max()))
    return diff / tol


@pytest.fixture(scope="module")
def inputs() -> dict[str, torch.Tensor]:
    fx = np.load(FIXTURES / "fixture_inputs.npz")
    np.random.seed(0)  # the fixture's recipe for its random batch (legacy global RandomState)
    random = np.random.uniform(0.0, 1.0, size=(8, 256, 256, 3)).astype(np.float32)
    assert hashlib.sha256(random.tobytes()).hexdigest() == str(fx["random_inputs_sha256"])
    return {
        "test": torch.from_numpy(fx["test_images"]).permute(0, 3, 1, 2),
        "random": torch.from_numpy(random).permute(0, 3, 1, 2),
    }


@pytest.mark.parametrize("name", FILES)
def test_parity_with_the_authors_keras_model(name: str, inputs: dict[str, torch.Tensor]) -> None:
    model = load_mesonet(WEIGHTS / f"{name}.h5")
    assert model.variant == ("meso4" if name.startswith("Meso4") else "inception4")
    ref = np.load(FIXTURES / f"fixture_{name}.npz")

    def nhwc(t: torch.Tensor) -> np.ndarray:
        return t.permute(0, 2, 3, 1).numpy()

    def channel_mean(t: torch.Tensor) -> np.ndarray:
        return t.double().mean(dim=(2, 3)).numpy()

    with torch.no_grad():
        x = inputs["test"]
        blocks = model.blocks(x)
        z = model.real_logit(x)
        flat = blocks[3].permute(0, 2, 3, 1).flatten(1)
        dense1 = model.dense1(flat)
        zr = model.real_logit(inputs["random"])
        flat_r = model.blocks(inputs["random"])[3].permute(0, 2, 3, 1).flatten(1)
    checks = {
        "test_output": within(torch.sigmoid(z)[:, None].numpy(), ref["test_output"], sigmoid=True),
        "test_logit": within(z[:, None].numpy(), ref["test_logit"]),
        "test_dense1": within(dense1.numpy(), ref["test_dense1"]),
        "test_dense1_leaky": within(torch.nn.functional.leaky_relu(dense1, 0.1).numpy(), ref["test_dense1_leaky"]),
        "test_flatten": within(flat.numpy(), ref["test_flatten"]),
        "test_block4": within(nhwc(blocks[3]), ref["test_block4"]),
        "test_block3": within(nhwc(blocks[2]), ref["test_block3"]),
        "test_block1_channel_mean": within(channel_mean(blocks[0]), ref["test_block1_channel_mean"]),
        "test_block2_channel_mean": within(channel_mean(blocks[1]), ref["test_block2_channel_mean"]),
        "real00240_block1": within(nhwc(blocks[0][2:3]), ref["real00240_block1"]),
        "real00240_block2": within(nhwc(blocks[1][2:3]), ref["real00240_block2"]),
        "random_output": within(torch.sigmoid(zr)[:, None].numpy(), ref["random_output"], sigmoid=True),
        "random_logit": within(zr[:, None].numpy(), ref["random_logit"]),
        "random_flatten": within(flat_r.numpy(), ref["random_flatten"]),
    }  # fmt: skip
    assert max(checks.values()) <= 1.0, {k: round(v, 3) for k, v in checks.items() if v > 1}
    # the authors' labels: df images score as forged, real ones as real (the DF weights only)
    if name.endswith("_DF"):
        assert (torch.sigmoid(z) > 0.5).tolist() == [False, False, True, True]


def test_as_a_detector_clip_scores_average_frame_scores() -> None:
    model = load_mesonet(WEIGHTS / "Meso4_DF.h5")
    torch.manual_seed(0)
    clip = torch.rand(1, 3, 3, 256, 256)
    with torch.no_grad():
        p_frames = torch.sigmoid(-model.real_logit(clip[0]))
        p_clip = model(clip).softmax(1)[0, 1]
        small = model(torch.nn.functional.interpolate(clip[0], size=128)[None])  # other sizes are resized
    assert float(p_clip) == pytest.approx(float(p_frames.mean()), abs=1e-6)
    assert small.shape == (1, 2)
    assert model.input_spec.size == 256 and model.fixed_size and model.describe()["licence"] == "Apache-2.0"
    assert MesoNet(**model.config()["init_args"]).config() == model.config()  # rebuilt from its configuration


def test_bad_weight_files_get_one_clear_error(tmp_path: Path) -> None:
    import h5py

    text = tmp_path / "Meso4_DF.h5"
    text.write_text("not hdf5")
    with pytest.raises(CheckpointError, match=r"Meso4_DF.h5: not an HDF5 file.*expected a MesoNet Keras weight file"):
        load_mesonet(text)
    wrong = tmp_path / "three_convs.h5"
    with h5py.File(wrong, "w") as f:
        for i in range(3):
            f.create_dataset(f"conv2d_{i + 1}/conv2d_{i + 1}/kernel:0", data=np.zeros((3, 3, 3, 8), np.float32))
    with pytest.raises(CheckpointError, match=r"three_convs.h5: has 3 conv layers; expected a MesoNet"):
        keras_variant(wrong)
    shapes = tmp_path / "wrong_shapes.h5"
    with h5py.File(WEIGHTS / "Meso4_DF.h5") as src, h5py.File(shapes, "w") as f:
        for name in src:
            src.copy(name, f)
        del f["dense_3/dense_3/kernel:0"]
        f.create_dataset("dense_3/dense_3/kernel:0", data=np.zeros((512, 16), np.float32))
    with pytest.raises(CheckpointError, match=r"dense_3/kernel has shape \(16, 512\), expected \(16, 1024\)"):
        load_mesonet(shapes)
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_mesonet(empty)


def test_detect_and_evaluate_accept_the_h5_files(sample_video: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from common.commands import main as cli_main

    ckpt = WEIGHTS / "MesoInception_DF.h5"
    assert cli_main(["detect", str(sample_video), "--checkpoint", str(ckpt), "--clips", "2", "--frames", "4",
                     "--json", "--device", "cpu"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["detector"]["kind"] == "mesonet" and result["detector"]["name"] == "MesoInception4"
    assert result["detector"]["input_spec"]["size"] == 256 and result["frames_per_clip"] == 4
    assert "Afchar" in result["detector"]["source"]
    (tmp_path / "m.csv").write_text(f"path,label,split\n{sample_video},real,test\n")
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(ckpt), "--dataset", "csv", "--root", str(tmp_path / "m.csv"),
            "--self-blend", "--clips", "2", "--frames", "2", "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert cli_main(args) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["detector"]["kind"] == "mesonet" and report["clip_level"]["n"] == 2
    assert report["input_spec"]["margin"] == pytest.approx(1.14)
