"""Face extraction on the real sample video: detection rate, geometry, smoothing, no-face cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.errors import NoFaceError
from common.faces import FaceExtractor, box_jitter, crop_square, smooth_boxes, square_boxes
from common.video import VideoReader


@pytest.fixture(scope="module")
def extractor() -> FaceExtractor:
    return FaceExtractor(crop_size=96, device="cpu")


@pytest.fixture(scope="module")
def sample_track(extractor: FaceExtractor, sample_video: Path):
    with VideoReader(sample_video) as r:
        return extractor.extract(r)


def test_sample_video_faces(sample_track) -> None:
    t = sample_track
    n = 120
    assert t.detected.mean() >= 0.95
    assert t.crops.shape == (n, 96, 96, 3) and t.crops.dtype == np.uint8
    assert t.landmarks.shape == (n, 5, 2) and t.scores.shape == (n,)
    assert np.array_equal(t.frame_indices, np.arange(n))
    b = t.boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= 176).all() and (b[:, 3] <= 144).all()
    assert ((b[:, 2] - b[:, 0]) > 30).all()  # a real face, not a speck
    sides = t.crop_boxes[:, 2] - t.crop_boxes[:, 0]
    assert np.allclose(sides, np.round(1.3 * np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])), atol=1)
    # landmarks (eyes above mouth) fall inside the crop
    lm = t.crop_landmarks(96)
    assert ((lm > 0) & (lm < 96)).all()
    assert (lm[:, 0, 1] < lm[:, 3, 1]).all()


def test_smoothing_reduces_jitter(sample_track) -> None:
    raw = sample_track.raw_boxes[sample_track.detected]
    assert box_jitter(sample_track.boxes) < 0.5 * box_jitter(raw)


def test_smooth_boxes_fills_and_respects_gaps() -> None:
    f = np.array([0, 1, 2, 3, 1000])
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [0, 0, 0, 0], [2, 0, 12, 10], [50, 50, 60, 60]], float)
    valid = np.array([True, True, False, True, True])
    out = smooth_boxes(f, boxes, valid, sigma=1.0)
    assert 0 < out[2, 0] < 2  # filled from neighbours
    assert np.allclose(out[4], [50, 50, 60, 60])  # a frame far away is not pulled by the others
    nearest = smooth_boxes(f, boxes, valid, sigma=0)
    assert np.allclose(nearest[2], boxes[1]) or np.allclose(nearest[2], boxes[3])


def test_crop_pads_at_borders() -> None:
    frame = np.full((40, 40, 3), 200, np.uint8)
    region = square_boxes(np.array([[-10.0, -10.0, 10.0, 10.0]]), 1.0)[0]
    crop = crop_square(frame, region, 20)
    assert crop.shape == (20, 20, 3)
    assert crop[:10, :10].max() == 0 and crop[10:, 10:].min() == 200


def test_missing_frames_are_filled_and_recorded(extractor: FaceExtractor, sample_frames: np.ndarray) -> None:
    frames = sample_frames[:6].copy()
    frames[2] = 0  # a black frame: no face
    dets = extractor.detect(frames)
    assert len(dets[2].boxes) == 0 and len(dets[0].boxes) >= 1
    track = extractor.build_track(np.arange(6), dets, (176, 144), "clip")
    assert track.detected.tolist() == [True, True, False, True, True, True]
    assert track.to_meta()["frames_without_face"] == [2]
    assert np.isfinite(track.boxes).all() and np.abs(track.boxes[2] - track.boxes[1]).max() < 5


def test_reduced_resolution_detection_matches_full(extractor: FaceExtractor, sample_frames: np.ndarray) -> None:
    big = np.stack([np.asarray(Image.fromarray(f).resize((704, 576), Image.BILINEAR)) for f in sample_frames[:4]])
    reduced = extractor.detect(big)  # 704 > 480: detected at reduced resolution
    full = FaceExtractor(device="cpu", detect_max_side=None).detect(big)
    for a, b in zip(reduced, full):
        assert np.abs(a.boxes[0] - b.boxes[0]).max() < 12  # a few pixels on a ~220-pixel face


def test_no_face_video_is_a_typed_error(extractor: FaceExtractor, noise_clip: Path) -> None:
    with VideoReader(noise_clip) as r, pytest.raises(NoFaceError, match="no face found in .*noise.mp4"):
        extractor.extract(r)


def test_tiny_frames_mean_no_face(extractor: FaceExtractor) -> None:
    dets = extractor.detect(np.zeros((3, 12, 16, 3), np.uint8))  # below MTCNN's minimum face size
    assert [len(d.boxes) for d in dets] == [0, 0, 0]


def test_astronaut_still_face(extractor: FaceExtractor) -> None:
    from skimage.data import astronaut

    det = extractor.detect(astronaut()[None])[0]
    assert len(det.boxes) >= 1 and det.scores.max() > 0.99
    x1, y1, x2, y2 = det.boxes[int(np.argmax(det.scores))]
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200  # her face, upper middle of the image


def test_detect_every_interpolates_within_runs(extractor: FaceExtractor, sample_video: Path) -> None:
    wanted = list(range(0, 10)) + list(range(50, 57))  # two runs of consecutive frames
    with VideoReader(sample_video) as r:
        full = extractor.extract(r, wanted, crops=False)
    with VideoReader(sample_video) as r:
        sparse = extractor.extract(r, wanted, crops=False, detect_every=3)
    interp = sparse.interpolated
    assert interp is not None and interp.sum() > 0
    detected_positions = [i for i, f in enumerate(wanted) if not interp[i]]
    # every 3rd frame of each run and the last frame of each run go through the detector
    assert detected_positions == [0, 3, 6, 9, 10, 13, 16]
    assert sparse.to_meta()["frames_without_face"] == [] and len(sparse.to_meta()["frames_interpolated"]) == 10
    assert np.abs(sparse.boxes - full.boxes).max() < 4  # interpolated boxes stay within a few pixels
