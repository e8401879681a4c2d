"""Shared fixtures: the bundled sample video, tiny synthetic videos and tiny dataset trees."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "assets" / "carphone_pristine.mp4"


@pytest.fixture(scope="session")
def sample_video() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_frames() -> np.ndarray:
    from common.video import VideoReader

    with VideoReader(SAMPLE) as r:
        return r.read(list(range(r.info.num_frames)))


def numbered_frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frames whose top-left block has grey level 8 * (i % 32): identifiable after lossy coding."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, :, :] = (i * 37) % 200
        frames[i, : h // 2, : w // 2] = 8 * (i % 32)
    return frames


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory: pytest.TempPathFactory, sample_frames: np.ndarray) -> Path:
    """A 12-frame cut of the sample video (real face), for fast face tests."""
    from common.encode import write_video

    path = tmp_path_factory.mktemp("clips") / "face12.mp4"
    return write_video(path, list(sample_frames[:12]), 29.97)


@pytest.fixture(scope="session")
def noise_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video without any face."""
    from common.encode import write_video

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("clips") / "noise.mp4"
    return write_video(path, list(rng.integers(0, 255, (6, 96, 128, 3), dtype=np.uint8)), 10)


@pytest.fixture(scope="session")
def native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The parity fixture's co-segmentation weights (weights produced by the original code, K = 10, 128 px) saved
    in the original native format."""
    import torch

    fx = torch.load(ROOT / "tests" / "data" / "coseg_parity_A.pt", weights_only=True)
    path = tmp_path_factory.mktemp("ckpt") / "coseg-10segments.pth.tar"
    torch.save({"segmentation_module": fx["segmentation_module"], "reconstruction_module": fx["reconstruction_module"],
                "epoch": 0}, path)  # fmt: skip
    return path


def copy_video(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst
