"""Batched MTCNN, key-frame tracking, bounded memory over long videos and light command start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.faces import FaceExtractor
from common.mtcnn import Detections
from common.tracking import FacePicker, KeyframeTracker
from common.video import VideoReader

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def batched() -> FaceExtractor:
    return FaceExtractor(crop_size=64, device="cpu")


@pytest.fixture(scope="module")
def reference() -> FaceExtractor:
    return FaceExtractor(crop_size=64, device="cpu", backend="facenet")


@pytest.fixture(scope="module")
def moving_face(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> Path:
    """640x360, 80 frames: the sample's face drifting sideways over a busy mosaic of photographs."""
    from common.benchmark import synthetic_video

    return synthetic_video(sample_video, tmp_path_factory.mktemp("moving") / "moving.mp4", (640, 360), 80)


def best_box(det: Detections) -> np.ndarray:
    return det.boxes[int(np.argmax(det.scores))]


def test_batched_mtcnn_matches_facenet(batched: FaceExtractor, reference: FaceExtractor,
                                       sample_frames: np.ndarray) -> None:  # fmt: skip
    from skimage.data import astronaut

    for frames in (sample_frames[::10], astronaut()[None]):
        ours, theirs = batched.detect(frames), reference.detect(frames)
        for a, b in zip(ours, theirs):
            assert (a.scores > 0.9).sum() == (b.scores > 0.9).sum() == 1
            assert np.abs(best_box(a) - best_box(b)).max() < 0.01  # the same area resampling, batched
            assert np.abs(a.landmarks[np.argmax(a.scores)] - b.landmarks[np.argmax(b.scores)]).max() < 0.01


def test_batched_mtcnn_agrees_on_clutter_and_black(batched: FaceExtractor, reference: FaceExtractor) -> None:
    from common.benchmark import clutter_background

    frames = np.stack([clutter_background(480, 270), np.zeros((270, 480, 3), np.uint8)])
    ours = [int((d.scores > 0.9).sum()) for d in batched.detect(frames)]
    assert ours == [int((d.scores > 0.9).sum()) for d in reference.detect(frames)]
    assert ours[1] == 0


def fake_detector(boxes: dict[int, tuple[float, ...] | None], calls: list[int]):
    """A detector over 'images' that are frame numbers: a face at ``boxes[f]`` (or none)."""

    def detect(images: list[int]) -> list[Detections]:
        out = []
        for f in images:
            calls.append(int(f))
            box = boxes.get(int(f))
            if box is None:
                out.append(Detections.empty())
            else:
                out.append(Detections(np.array([box], np.float32), np.array([0.99], np.float32),
                                      np.zeros((1, 5, 2), np.float32)))  # fmt: skip
        return out

    return detect


def test_keyframe_tracker_detects_between_keys_only_when_the_track_is_lost() -> None:
    # frames 0-24: a face moving slowly, jumping at frame 10, gone from frame 17 on
    boxes: dict[int, tuple[float, ...] | None] = {}
    for f in range(25):
        x = f if f < 10 else 200 + f
        boxes[f] = (x, 10.0, x + 50.0, 60.0) if f < 17 else None
    calls: list[int] = []
    tracker = KeyframeTracker(fake_detector(boxes, calls), FacePicker(), every=4, batch_size=2)
    for s in range(0, 25, 3):  # pushed in uneven chunks
        frames = list(range(s, min(s + 3, 25)))
        tracker.push(frames, frames)
    idx, dets, interpolated = tracker.finish()
    assert idx.tolist() == list(range(25))
    detected = [int(f) for f in idx[~interpolated]]
    # keys 0, 4, 8, 12, 16, 20, 24; the jump between 8 and 12 and the loss between 16 and 20 are searched
    assert detected == [0, 4, 8, 9, 10, 11, 12, 16, 17, 18, 19, 20, 24]
    assert sorted(calls) == detected and tracker.refined == 6
    assert all(len(dets[i].boxes) == 0 for i in np.flatnonzero(interpolated))


def test_keyframe_tracker_respects_runs_of_frames() -> None:
    calls: list[int] = []
    tracker = KeyframeTracker(fake_detector({f: (0.0, 0.0, 40.0, 40.0) for f in range(100)}, calls), FacePicker(),
                              every=3)  # fmt: skip
    frames = [0, 1, 2, 3, 4, 10, 11, 50]
    tracker.push(frames, frames)
    idx, _, interpolated = tracker.finish()
    assert idx.tolist() == frames
    assert [int(f) for f in idx[~interpolated]] == [0, 3, 4, 10, 11, 50]  # each run's first and last frame


def key_frames(frames: list[int], every: int) -> list[bool]:
    """Which frames a tracker runs the detector on when the track is never lost."""
    tracker = KeyframeTracker(fake_detector({f: (0.0, 0.0, 40.0, 40.0) for f in frames}, []), FacePicker(), every)
    tracker.push(frames, frames)
    return (~tracker.finish()[2]).tolist()


def test_key_frame_plan() -> None:
    assert key_frames([0, 1, 2, 3, 4, 10, 11, 30], 2) == [True, False, True, False, True, True, True, True]
    assert all(key_frames([5, 6, 7], 1)) and len(key_frames([], 3)) == 0


def test_whole_video_tracking_stays_close_to_every_frame_detection(
    batched: FaceExtractor, reference: FaceExtractor, sample_video: Path, moving_face: Path
) -> None:
    for video, mean_px, max_px in ((sample_video, 1.5, 4.0), (moving_face, 2.5, 7.0)):
        with VideoReader(video) as r:
            tracked = batched.extract(r, crops=False, detect_every=4)
        with VideoReader(video) as r:
            every = reference.extract(r, crops=False)  # the previous default: facenet-pytorch on every frame
        assert tracked.interpolated is not None and tracked.interpolated.mean() > 0.6  # most frames skipped
        diff = np.abs(tracked.boxes - every.boxes)
        assert diff.mean() < mean_px and diff.max() < max_px, (video.name, diff.mean(), diff.max())


def test_smoothing_is_linear_in_length() -> None:
    from common.faces import smooth_boxes

    n = 200_000  # an N x N weight matrix would need 320 GB
    f = np.arange(n)
    boxes = np.stack([f % 7, f % 5, f % 7 + 50, f % 5 + 50], axis=1).astype(np.float32)
    valid = f % 4 == 0
    out = smooth_boxes(f, boxes, valid, sigma=2.0)
    assert out.shape == (n, 4) and np.isfinite(out).all()
    assert np.abs(out[:, 2] - out[:, 0] - 50).max() < 1e-3


def test_peak_memory_does_not_grow_with_video_length(tmp_path: Path, sample_video: Path) -> None:
    """``forgelab detect --out`` and ``forgelab faces`` on a video 8x longer must not cost more memory (holding
    its frames would add ~240 MB at 640x360)."""
    from common.benchmark import measure_command, synthetic_video
    from detection.benchmark import sample_sized_checkpoint

    ckpt = sample_sized_checkpoint(tmp_path / "sample_sized.ckpt")
    peaks: dict[str, dict[int, float]] = {"detect_out": {}, "faces": {}}
    for frames in (50, 400):
        video = synthetic_video(sample_video, tmp_path / f"v{frames}.mp4", (640, 360), frames)
        annotated = tmp_path / f"annotated{frames}.mp4"
        run = measure_command(["detect", str(video), "--checkpoint", str(ckpt), "--out", str(annotated)])
        peaks["detect_out"][frames] = run["peak_mb"]
        run = measure_command(["faces", str(video), "--detect-every", "4", "--crop-size", "64", "--out", str(tmp_path)])
        peaks["faces"][frames] = run["peak_mb"]
        with VideoReader(annotated) as r:
            assert r.info.num_frames == frames
        summary = json.loads((tmp_path / f"v{frames}_faces.json").read_text())
        assert summary["sheet_tiles"] == min(frames, 96) and summary["face_rate"] == 1.0
    for command, peak in peaks.items():
        assert peak[400] - peak[50] < 60, (command, peaks)


def test_commands_start_without_the_heavy_libraries() -> None:
    code = (
        "import sys, common.commands as c; c.build_parser(); "
        "import detection.loading, detection.predict, detection.annotate; "
        "print(' '.join(m for m in ('lightning', 'torchmetrics', 'timm') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.strip() == ""  # inference never imports the training stack (~100 MB, ~1 s)
    help_only = "import sys, common.commands as c; c.build_parser(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", help_only], capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.strip() == "False"  # `forgelab --help` starts in a fraction of a second
