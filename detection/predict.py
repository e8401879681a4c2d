"""Video -> verdict, the library behind ``forgelab detect``.

Faces are found and tracked in K clips of T frames spread over the whole video (every ``stride``-th frame,
T, crop size and margin from the detector's input spec), each clip gets p(fake), and the video's score
aggregates them (the spec's rule). The verdict says what it rests on:

* **INCONCLUSIVE** when a face was actually *detected* (not filled in from neighbouring frames) in less
  than ``min_face_share`` of the scored frames, or when p(fake) lies within ``band`` of the threshold;
* otherwise **FAKE** when p(fake) > threshold (:func:`detection.metrics.is_fake`), else **REAL**.

The JSON result names the rule that decided, the counts of detected and filled-in faces and the threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.clips import eval_starts
from common.errors import ConfigError
from common.faces import FaceExtractor, FaceTrack
from common.frames import to_tensor_clip
from common.video import VideoReader
from detection.loading import LoadedDetector
from detection.metrics import AGGREGATIONS, DEFAULT_THRESHOLD, is_fake


@dataclass(frozen=True)
class VerdictRules:
    """When a score becomes REAL, FAKE or INCONCLUSIVE.

    Attributes:
        threshold: FAKE when p(fake) is above it.
        band: INCONCLUSIVE when ``|p(fake) - threshold| < band``.
        min_face_share: INCONCLUSIVE when faces were detected in fewer of the scored frames than this.
    """

    threshold: float = DEFAULT_THRESHOLD
    band: float = 0.1
    min_face_share: float = 0.5

    def decide(self, p_fake: float, face_share: float) -> tuple[str, str, str]:
        """``(verdict, rule, reason)`` for a video score and the share of scored frames with a detected face."""
        if face_share < self.min_face_share:
            return ("INCONCLUSIVE", "few_faces", f"a face was detected in only {100 * face_share:.0f} % of the "
                    f"scored frames (needs {100 * self.min_face_share:.0f} %)")  # fmt: skip
        if abs(p_fake - self.threshold) < self.band:
            return ("INCONCLUSIVE", "near_threshold", f"p(fake) {p_fake:.3f} lies within {self.band:g} of the "
                    f"threshold {self.threshold:g}")  # fmt: skip
        verdict = "FAKE" if is_fake(p_fake, self.threshold) else "REAL"
        side = "above" if verdict == "FAKE" else "below"
        return verdict, "score", f"p(fake) {p_fake:.3f} is {side} the threshold {self.threshold:g}"


@dataclass
class Analysis:
    """One scored video.

    Attributes:
        result: the JSON-ready result.
        plan: frame numbers of each scored clip.
        clips: the face clips fed to the detector, float ``[K, T, 3, S, S]`` RGB [0, 1].
        track: the face track of the scored frames.
    """

    result: dict[str, Any]
    plan: list[list[int]]
    clips: torch.Tensor
    track: FaceTrack


def clip_plan(num_frames: int, clip_len: int, clips: int, stride: int = 1) -> list[list[int]]:
    """``clips`` runs of ``clip_len`` frames (every ``stride``-th) spread evenly over the whole video."""
    t = max(1, min(clip_len, (num_frames - 1) // stride + 1))
    starts = sorted(set(eval_starts(num_frames, t, stride, clips)))
    return [[s + j * stride for j in range(t)] for s in starts]


def extractor_for(detector: LoadedDetector) -> FaceExtractor:
    """A face extractor cutting the crops the detector's input spec asks for."""
    spec = detector.spec
    return FaceExtractor(crop_size=spec.size, margin=spec.margin, square=spec.square, resample=spec.resize,
                         device=str(detector.device))  # fmt: skip


MIN_SCORED_FRAMES = 16  # default clips: at least this many frames scored (4 clips of 20 frames score 80)


def default_clips(detector: LoadedDetector, frames: int | None = None) -> int:
    """Clips to score by default: 4, or more when each clip scores few frames (a frame-level detector, or one that
    reads a window of frames per scored frame), so a verdict never rests on fewer than
    :data:`MIN_SCORED_FRAMES` frames."""
    per_clip = max(1, detector.module.scored_frames(frames or detector.spec.frames))
    return max(4, -(-MIN_SCORED_FRAMES // per_clip))


def analyse(
    video: str | Path,
    detector: LoadedDetector,
    extractor: FaceExtractor,
    clips: int | None = None,
    frames: int | None = None,
    rules: VerdictRules | None = None,
    detect_every: int = 1,
) -> Analysis:
    """Score one video (see the module docstring).

    Args:
        video: the video file.
        detector: the loaded detector.
        extractor: face extractor (:func:`extractor_for`).
        clips: K clips spread over the whole video (default :func:`default_clips`).
        frames: T frames per clip (default: the detector's spec).
        rules: the verdict rules.
        detect_every: run the face detector on every k-th scored frame (1 = all; the others are then
            interpolated and do not count as detected faces).

    Raises:
        NoFaceError: no scored frame has a face.
    """
    rules = rules or VerdictRules()
    spec = detector.spec
    clip_len = frames or spec.frames
    clips = default_clips(detector, frames) if clips is None else clips
    if clip_len <= 0 or clips <= 0:
        raise ConfigError("--frames and --clips must be positive")
    with VideoReader(video) as reader:
        info = reader.info
        plan = clip_plan(info.num_frames, clip_len, clips, spec.stride)
        wanted = sorted({i for c in plan for i in c})
        track = extractor.extract(reader, wanted, detect_every=detect_every)
    pos = {int(f): i for i, f in enumerate(track.frame_indices)}
    crops = to_tensor_clip(track.crops, None)
    batch = torch.stack([crops[[pos[i] for i in c]] for c in plan])
    scores = detector.p_fake(batch)
    p = AGGREGATIONS[spec.aggregation](scores)
    detected = int(track.detected.sum())
    interpolated = int(track.interpolated.sum()) if track.interpolated is not None else 0
    verdict, rule, reason = rules.decide(p, detected / len(wanted))
    result = {
        "video": str(video),
        "verdict": verdict,
        "verdict_rule": rule,
        "verdict_reason": reason,
        "confidence": round(100 * max(p, 1 - p), 1),
        "p_fake": round(p, 4),
        "threshold": rules.threshold,
        "inconclusive_band": rules.band,
        "min_face_share": rules.min_face_share,
        "clips": [{"start": c[0], "end": c[-1], "p_fake": round(float(s), 4)} for c, s in zip(plan, scores)],
        "frames_per_clip": len(plan[0]),
        "frame_stride": spec.stride,
        "frames_used": len(wanted),
        "faces_found": detected,
        "faces_detected_share": round(detected / len(wanted), 4),
        "frames_face_interpolated": interpolated,
        "frames_face_filled": int(track.missing().sum()),
        "frames_without_face": track.frame_indices[track.missing()].tolist(),
        "video_info": {"fps": round(info.fps, 3), "frames": info.num_frames, "size": [info.width, info.height]},
        "detector": {**detector.describe(), "input_spec": spec.to_dict()},
    }
    return Analysis(result, plan, batch, track)


def clip_cams(detector: LoadedDetector, analysis: Analysis, name: str | None = None) -> dict[int, np.ndarray]:
    """Heatmap ``[S, S]`` for every scored frame number: the detector's explanation ``name`` (default its first:
    Grad-CAM, see :mod:`detection.cam`, or a detector's own attention maps; :meth:`Detector.explain`)."""
    heat: dict[int, np.ndarray] = {}
    for c, clip in zip(analysis.plan, analysis.clips):
        maps = detector.module.explain(clip[None].to(detector.device))
        if name is not None and name not in maps:
            raise ConfigError(f"this detector explains itself with {', '.join(maps)}, not {name!r}")
        for f, h in zip(c, maps[name or next(iter(maps))]):  # the first T' frames are the scored ones
            heat[f] = h
    return heat


def print_result(result: dict[str, Any], as_json: bool) -> None:
    """Human-readable line per video, or the JSON document."""
    if as_json:
        print(json.dumps(result, indent=2))
        return
    clips = ", ".join(f"{c['start']}-{c['end']}: {c['p_fake']:.2f}" for c in result["clips"])
    faces = f"{result['faces_found']}/{result['frames_used']}"
    d = result["detector"]
    source = "; ".join(v for v in (d.get("weights"), d.get("source"), d.get("licence")) if v)
    print(f"{result['video']}: {result['verdict']} ({result['verdict_reason']}; {result['confidence']:.1f} % "
          f"confident); clips {clips}; faces detected in {faces} frames; detector {d['name']}"
          + (f" ({source})" if source else ""))  # fmt: skip
