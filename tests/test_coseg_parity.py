"""Numerical parity with the original motion-cosegmentation code (fixture produced by running it).

The fixture (tests/data/coseg_parity_A.pt, see COSEG_FIXTURE_README.md) holds weights, real-face inputs
from the sample video and every intermediate output; tolerances are the fixture's ``atol.suggested``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from generation.checkpoints import build_modules, load_state
from generation.losses import ImagePyramid, equivariance_losses
from generation.models.blocks import AntiAliasInterpolation2d
from generation.part_swap import blend_mask, swap_parts
from generation.transform import Transform

FIXTURE = Path(__file__).parent / "data" / "coseg_parity_A.pt"


@pytest.fixture(scope="module")
def fx() -> dict:
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="module")
def modules(fx: dict):
    torch.set_num_threads(2)
    seg, rec = build_modules(fx["config"]["model_params"])
    load_state(seg, rec, fx["segmentation_module"], fx["reconstruction_module"], "fixture")
    return seg.eval(), rec.eval()


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float, name: str) -> None:
    assert actual.shape == expected.shape, name
    err = (actual - expected).abs().max().item()
    assert err <= atol, f"{name}: max abs error {err:.3g} > {atol:g}"


def tol(fx: dict, key: str) -> float:
    return fx["atol"]["suggested"][key]


@torch.no_grad()
def test_segmentation_outputs(fx: dict, modules) -> None:
    seg, _ = modules
    for name in ("seg_source", "seg_target"):
        image = fx["inputs"]["source" if name == "seg_source" else "target"]
        out = seg(image)
        for key in ("segmentation", "shift", "affine"):
            close(out[key], fx["outputs"][name][key], tol(fx, f"{name}/{key}"), f"{name}/{key}")


@torch.no_grad()
def test_reconstruction_outputs(fx: dict, modules) -> None:
    seg, rec = modules
    out = rec(fx["inputs"]["source"], seg_target=seg(fx["inputs"]["target"]), seg_source=seg(fx["inputs"]["source"]))
    for key in ("prediction", "deformed", "visibility_maps"):
        close(out[key], fx["outputs"]["reconstruction"][key], tol(fx, f"reconstruction/{key}"), key)


@torch.no_grad()
@pytest.mark.parametrize("case", ["soft_target_seg", "hard_source_seg"])
def test_part_swap(fx: dict, modules, case: str) -> None:
    seg, rec = modules
    c = fx["part_swap"][case]
    source, target = fx["inputs"]["source"], fx["inputs"]["target"]
    seg_s, seg_t = seg(source), seg(target)
    mask = blend_mask((seg_s if c["use_source_segmentation"] else seg_t)["segmentation"], c["swap_index"], c["hard"])
    if c["hard"]:
        assert torch.equal(mask, c["blend_mask"])  # exact
    else:
        close(mask, c["blend_mask"], tol(fx, f"part_swap/{case}/blend_mask"), "blend_mask")
    pred = swap_parts(rec, source, target, seg_s, seg_t, mask, c["use_source_segmentation"])
    close(pred, c["prediction_batched_forward"], 1e-3, "prediction_batched_forward")
    close(pred, c["prediction"], 1e-3, "prediction")
    assert (pred - target).abs().max() > 0.1  # the swap really changes the image


def test_equivariance(fx: dict, modules) -> None:
    seg, _ = modules
    e = fx["equivariance"]
    transform = Transform(e["theta"], e["control_points"], e["control_params"])
    target = fx["inputs"]["target"]
    with torch.no_grad():
        seg_t = seg(target)
    close(transform.transform_frame(target), e["transformed_frame"], tol(fx, "equivariance/transformed_frame"), "tf")
    close(transform.warp_coordinates(seg_t["shift"]), e["warp_coordinates_shift_target"], 1e-5, "warp target")
    close(transform.jacobian(seg_t["shift"].clone().requires_grad_(True)), e["jacobian_shift_target"], 1e-5, "jac")
    losses, extras = equivariance_losses(seg, target, seg_t, transform, e["loss_weights"]["equivariance"])
    for key in ("segmentation", "shift", "affine"):
        close(extras["transformed_seg"][key], e["transformed_seg"][key], tol(fx, f"equivariance/transformed_seg/{key}"),
              key)  # fmt: skip
    close(extras["warped_shift"], e["warp_coordinates_shift_transformed"], 1e-5, "warp transformed")
    close(extras["jacobian"], e["jacobian_shift_transformed"], 1e-5, "jacobian transformed")
    assert losses["equivariance_shift"].item() == pytest.approx(e["equivariance_shift"], abs=1e-4)
    assert losses["equivariance_affine"].item() == pytest.approx(e["equivariance_affine"], abs=1e-4)


def test_anti_alias_pyramid(fx: dict) -> None:
    aa = fx["anti_alias"]
    target = fx["inputs"]["target"]
    pyramid = ImagePyramid([1, *aa["scales"]])
    levels = pyramid(target)
    assert torch.equal(levels[0], target)
    for s, level in zip(aa["scales"], levels[1:]):
        module = AntiAliasInterpolation2d(3, s)
        close(module.weight, aa["kernels"][str(s)], 1e-6, f"kernel {s}")
        assert list(module.pad) == aa["padding"][str(s)]
        close(level, aa["outputs"][str(s)], 1e-5, f"anti-alias {s}")


def test_fixture_discriminates_align_corners(fx: dict, modules) -> None:
    """The parity tests can fail: a wrong grid_sample convention moves the prediction far off."""
    import torch.nn.functional as F

    seg, rec = modules
    original = F.grid_sample

    def wrong(*args, **kwargs):
        kwargs["align_corners"] = False
        return original(*args, **kwargs)

    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "grid_sample", wrong)
        out = rec(
            fx["inputs"]["source"], seg_target=seg(fx["inputs"]["target"]), seg_source=seg(fx["inputs"]["source"])
        )
    assert (out["prediction"] - fx["outputs"]["reconstruction"]["prediction"]).abs().max() > 0.1
