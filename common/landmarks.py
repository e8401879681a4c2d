"""Dense facial landmarks: dlib's 68-point shape predictor (Kazemi and Sullivan, CVPR 2014) on a face crop, and the
geometry read from them.

The model file ships in the ``face-recognition-models`` package (``shape_predictor_68_face_landmarks.dat``); dlib
comes prebuilt from ``dlib-bin``. Nothing is downloaded. The 68-point model was trained on iBUG 300-W, whose terms
exclude commercial use: :data:`LICENCE` says so wherever the landmarks are used.

Point indices (0-based): jaw 0-16, brows 17-26, nose 27-35, eyes 36-41 and 42-47 (corner, two upper-lid points,
other corner, two lower-lid points), mouth 48-67 (inner lips 60-67).
"""

from __future__ import annotations

import functools
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch

from common.errors import CheckpointError

REGIONS = {"jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48), "mouth": (48, 68)}
RIGHT_EYE, LEFT_EYE = (36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)
INNER_MOUTH = (60, 61, 63, 64, 65, 67)  # corner, upper, upper, corner, lower, lower (the EAR order)
LICENCE = "dlib 68-point model (face-recognition-models, trained on iBUG 300-W: non-commercial terms)"
MODEL_FILE = "shape_predictor_68_face_landmarks.dat"


def model_path() -> Path:
    """The 68-point model file inside the installed ``face_recognition_models`` package (not imported: its
    ``__init__`` needs setuptools' ``pkg_resources``)."""
    spec = find_spec("face_recognition_models")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "models" / MODEL_FILE
        if path.is_file():
            return path
    raise CheckpointError(MODEL_FILE, "the face-recognition-models package is not installed (pip install -e .)")


@functools.lru_cache(maxsize=1)
def shape_predictor():  # noqa: ANN201  (a dlib.shape_predictor)
    """dlib's 68-point predictor, read once per process (~0.3 s, 100 MB)."""
    import dlib

    return dlib.shape_predictor(str(model_path()))


def landmarks68(images: np.ndarray, boxes: np.ndarray, spread: float = 0.0) -> np.ndarray:
    """68 points ``[N, 68, 2]`` (x, y in pixels, float32) of ``images [N, H, W, 3]`` uint8 RGB, each inside its face
    box ``boxes [N, 4]`` (x0, y0, x1, y1). About 0.5 ms per face and box on one CPU core.

    ``spread`` > 0: the mean of the predictions from 9 boxes, the given one moved by ``-spread, 0, +spread`` pixels
    in x and y. The predictor's regression trees start from the box, so one box makes the points follow where it
    falls: on a real face, translating the crop by 1-8 px moved the aligned points by 0.03-0.15 inter-ocular
    distances with one box and by 0.02-0.06 with 9 boxes 4 px apart (tests/test_multi_cue.py checks this)."""
    import dlib

    predictor = shape_predictor()
    offsets = [(dx, dy) for dx in (-spread, 0, spread) for dy in (-spread, 0, spread)] if spread > 0 else [(0, 0)]
    out = np.zeros((len(images), 68, 2), np.float32)
    for i, (image, box) in enumerate(zip(images, boxes, strict=True)):
        image = np.ascontiguousarray(image)
        for dx, dy in offsets:
            x0, y0, x1, y1 = (int(round(float(v) + d)) for v, d in zip(box, (dx, dy, dx, dy), strict=True))
            shape = predictor(image, dlib.rectangle(x0, y0, x1, y1))
            out[i] += np.array([(p.x, p.y) for p in shape.parts()], np.float32)
    return out / len(offsets)


def aspect_ratio(points: torch.Tensor, idx: tuple[int, ...]) -> torch.Tensor:
    """The eye aspect ratio (Soukupova and Cech 2016), ``(|p2-p6| + |p3-p5|) / (2 |p1-p4|)``, of the six points
    ``idx`` of ``points [..., 68, 2]`` -> ``[...]`` (also the inner mouth's opening with :data:`INNER_MOUTH`)."""
    p = [points[..., i, :] for i in idx]
    vertical = (p[1] - p[5]).norm(dim=-1) + (p[2] - p[4]).norm(dim=-1)
    return vertical / (2 * (p[0] - p[3]).norm(dim=-1)).clamp_min(1e-6)


def aligned(points: torch.Tensor) -> torch.Tensor:
    """``points [..., 68, 2]`` in the face's own frame: the eyes' midpoint at the origin, the eye-to-eye line along
    +x, the inter-ocular distance 1 (a similarity transform: translation, rotation and scale removed)."""
    right = points[..., list(RIGHT_EYE), :].mean(-2)
    left = points[..., list(LEFT_EYE), :].mean(-2)
    axis = left - right
    dist = axis.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    c, s = (axis / dist).unbind(-1)
    centred = (points - ((left + right) / 2)[..., None, :]) / dist[..., None]
    x, y = centred.unbind(-1)
    return torch.stack([c[..., None] * x + s[..., None] * y, -s[..., None] * x + c[..., None] * y], dim=-1)
