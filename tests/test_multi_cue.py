"""Seed 002's fused detector: every stream switched on and off, gradients, the landmark geometry (exactly invariant to
moving the points; nearly invariant to moving a real face in its crop), jitter and blur cues that respond to what
they measure, and a detect run on the bundled video."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.transform
import torch

from common.errors import ConfigError
from common.landmarks import REGIONS, aligned, landmarks68
from detection.models import MultiCueDetector
from detection.models.cues import (
    LANDMARK_SUMMARY_WIDTH,
    LANDMARK_WIDTH,
    face_boxes,
    landmark_cues,
    landmark_vector,
    quality_cues,
    summarise_landmarks,
    summarise_quality,
)
from tests.test_detection import save_system


@pytest.fixture(scope="module")
def face_image() -> torch.Tensor:
    """The astronaut at 0.64 scale ``[3, 327, 327]`` in [0, 1]: her face fills a 128-px crop at (83, 19)."""
    big = skimage.transform.rescale(skimage.data.astronaut(), 0.64, channel_axis=-1, anti_aliasing=True)
    return torch.from_numpy(big).permute(2, 0, 1).float()


def crop(image: torch.Tensor, dx: int = 0, dy: int = 0) -> torch.Tensor:
    """The 128-px face crop moved by whole pixels (no resampling) ``[1, 3, 128, 128]``."""
    return image[:, 19 + dy : 147 + dy, 83 + dx : 211 + dx][None].contiguous()


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"noise": "bayar", "landmarks": False},
        {"noise": "both", "quality": False},
        {"trunk": None, "noise": "srm"},
        {"noise": "none", "landmarks": False, "quality": False},
        {"trunk": None, "noise": "none"},  # the hand-crafted cues alone
    ],
)
def test_every_switch_gives_a_working_detector_whose_parameters_all_learn(kw: dict) -> None:
    torch.manual_seed(0)
    det = MultiCueDetector(**{"noise_width": 4, "width": 16, "size": 64, "frames": 3, **kw})
    video = torch.rand(2, 3, 3, 64, 64)
    features = det.forward_features(video)
    grid = 2 if det.maps is not None else 1
    assert features.shape == (6, det.map_width + det.cue_width, grid, grid)
    logits = det(video)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    logits[:, 1].sum().backward()
    params = dict(det.named_parameters())
    assert params and all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values()), [
        n for n, p in params.items() if p.grad is None or p.grad.abs().sum() == 0
    ]
    if kw.get("noise", "srm") in ("bayar", "both"):
        k = det.maps.bayar.kernel()
        assert torch.allclose(k[..., 2, 2], torch.full_like(k[..., 2, 2], -1))
        assert torch.allclose(k.sum((-1, -2)), torch.zeros(3, 3), atol=1e-5)  # a prediction error: zero-sum


def test_switching_everything_off_is_refused() -> None:
    with pytest.raises(ConfigError, match="every cue is switched off"):
        MultiCueDetector(trunk=None, noise="none", landmarks=False, quality=False)
    with pytest.raises(ConfigError, match="no map to draw"):
        MultiCueDetector(trunk="none", noise="none", size=64).explain(torch.rand(1, 2, 3, 64, 64))
    with pytest.raises(ConfigError, match="noise must be"):
        MultiCueDetector(noise="dct")  # type: ignore[arg-type]


def test_landmark_vector_ignores_where_and_how_large_the_face_is() -> None:
    torch.manual_seed(0)
    points = torch.rand(4, 68, 2) * 60 + 30
    angle = 0.3
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = (points @ rot.T) * 1.7 + torch.tensor([13.0, -7.0])
    assert torch.allclose(landmark_vector(moved), landmark_vector(points), atol=1e-4)
    eyes = aligned(points)
    right, left = eyes[:, 36:42].mean(1), eyes[:, 42:48].mean(1)
    assert torch.allclose(right, torch.tensor([-0.5, 0.0]).expand(4, 2), atol=1e-5)
    assert torch.allclose(left, torch.tensor([0.5, 0.0]).expand(4, 2), atol=1e-5)


def test_landmarks_on_a_real_face_follow_it_and_barely_move_with_the_crop(face_image: torch.Tensor) -> None:
    still = crop(face_image)
    pts = landmarks68((still[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[None],
                      face_boxes(1, 128, 1.3), spread=4)[0]  # fmt: skip
    # anatomy: eyes above the nose tip above the mouth above the chin; the right eye (image left) left of the left eye
    assert pts[36:42, 1].mean() < pts[33, 1] < pts[48:68, 1].mean() < pts[8, 1]
    assert pts[36:42, 0].mean() < pts[30, 0] < pts[42:48, 0].mean()
    ear_r, ear_l, mouth = landmark_cues(still, 1.3)[0, -3:].tolist()
    assert 0.15 < ear_r < 0.45 and 0.15 < ear_l < 0.45 and mouth < 0.6  # open eyes
    base = landmark_cues(still, 1.3)
    for dx, dy in [(1, 0), (0, -3), (4, 4), (-5, 3), (8, -6)]:
        moved = landmark_cues(crop(face_image, dx, dy), 1.3)
        # raw pixel coordinates move by up to 10 px (0.25 inter-ocular distances); the aligned ones stay
        assert (moved[:, :136] - base[:, :136]).abs().mean() < 0.08, (dx, dy)
        assert (moved[:, 136:] - base[:, 136:]).abs().max() < 0.12, (dx, dy)


def test_jitter_is_zero_for_a_still_face_and_names_the_region_that_moves() -> None:
    torch.manual_seed(0)
    frame = landmark_vector(torch.rand(1, 68, 2) * 60 + 30)
    still = frame.expand(5, -1)[None]  # [1, 5, LANDMARK_WIDTH]
    summary = summarise_landmarks(still)
    assert summary.shape == (1, LANDMARK_SUMMARY_WIDTH)
    assert torch.allclose(summary[0, -len(REGIONS) :], torch.zeros(len(REGIONS)))
    shaking = still.clone()
    shaking[0, 1::2, 2 * 48 : 2 * 68] += 0.1  # the mouth's points jump on every other frame
    jitter = dict(zip(REGIONS, summarise_landmarks(shaking)[0, -len(REGIONS) :].tolist(), strict=True))
    assert jitter["mouth"] == pytest.approx(0.1 * math.sqrt(2), rel=1e-4)
    assert all(jitter[r] == 0 for r in REGIONS if r != "mouth")


def test_quality_cues_see_blur(face_image: torch.Tensor) -> None:
    from torchvision.transforms.functional import gaussian_blur

    sharp = crop(face_image)
    blurred = gaussian_blur(sharp, kernel_size=7, sigma=2.0)
    q_sharp, q_blur = quality_cues(sharp, 1.3)[0], quality_cues(blurred, 1.3)[0]
    assert q_blur[0] < q_sharp[0] - 1  # log Laplacian variance drops
    assert q_blur[1] < q_sharp[1]  # Tenengrad drops
    assert q_blur[2] < q_sharp[2] / 2  # high-frequency share drops
    assert q_blur[4] > q_sharp[4]  # Crete blur rises
    face_only = sharp.clone()
    face_only[..., 30:98, 30:98] = gaussian_blur(sharp, kernel_size=7, sigma=2.0)[..., 30:98, 30:98]
    assert quality_cues(face_only, 1.3)[0, 3] < q_sharp[3] - 1  # a softened face against a sharp ring
    clip = torch.stack([q_sharp, q_blur, q_sharp])[None]
    mean, std, change = summarise_quality(clip)[0].view(3, -1)
    assert torch.allclose(change, (q_blur - q_sharp).abs())
    assert torch.allclose(mean, (2 * q_sharp + q_blur) / 3)


def test_detect_runs_the_fused_detector_on_the_bundled_video(sample_video: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from common.commands import main as cli_main

    torch.manual_seed(0)
    det = MultiCueDetector(noise_width=4, width=16, size=64, frames=3).eval()
    ckpt = save_system(tmp_path / "mc.ckpt", det, size=64, frames=3, margin=1.3)
    assert cli_main(["detect", str(sample_video), "--checkpoint", str(ckpt), "--clips", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] in ("REAL", "FAKE", "INCONCLUSIVE") and 0 <= report["p_fake"] <= 1
    assert "landmarks" in report["detector"]["name"] and "iBUG" in report["detector"]["licence"]
    assert LANDMARK_WIDTH == 139
