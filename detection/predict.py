"""Video -> verdict: ``forgelab detect`` and the shared detector loading used by ``evaluate``.

A detector is either our Lightning checkpoint (``.ckpt`` of :class:`DetectionSystem`) or a published
``model_<acc>_acc_<frames>_frames_<tag>.pt`` file (through the legacy adapter). Faces are found and
tracked over the whole video, K clips of T frames are spread over its whole length (not only its first
frames), each clip gets p(fake), and the video's score is their mean.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.checkpoints import newest_best_checkpoint, read_checkpoint
from common.data import eval_starts, to_tensor_clip
from common.errors import CheckpointError, ConfigError
from common.faces import FaceExtractor, FaceTrack, resolve_device
from common.video import VideoReader
from detection.models.legacy import is_legacy_file, load_legacy

DEFAULT_RUNS = Path("outputs/runs/detector_sample")


@dataclass
class Detector:
    """A loaded detector: ``module(video [B, T, 3, S, S] RGB [0, 1]) -> logits [B, 2]`` (index 1 = fake)."""

    module: torch.nn.Module
    clip_len: int
    size: int
    kind: str
    path: str
    device: torch.device

    @torch.no_grad()
    def p_fake(self, clips: torch.Tensor, batch_size: int = 8) -> np.ndarray:
        """p(fake) of each clip of ``clips [K, T, 3, S, S]``."""
        out = []
        for i in range(0, len(clips), batch_size):
            logits = self.module(clips[i : i + batch_size].to(self.device))
            out.append(logits.float().softmax(1)[:, 1].cpu())
        return torch.cat(out).numpy()


def load_detector(path: str | Path | None, device: str = "auto") -> Detector:
    """Load our checkpoint or a published file; ``None`` takes the newest sample run's best checkpoint."""
    if path is None:
        path = newest_best_checkpoint(DEFAULT_RUNS)
        if path is None:
            raise CheckpointError("--checkpoint", "none given and no sample run found: run `make train-detector` or "
                                  "pass --checkpoint (ours .ckpt or a published model_*.pt)")  # fmt: skip
    dev = resolve_device(device)
    if is_legacy_file(path):
        adapter = load_legacy(path)
        adapter.model.model.to(memory_format=torch.channels_last)  # same numbers, faster convolutions
        return Detector(adapter.to(dev).eval(), adapter.frames, adapter.size, "legacy", str(path), dev)
    data = read_checkpoint(path)
    if "state_dict" not in data or not any(k.startswith("model.") for k in data["state_dict"]):
        raise CheckpointError(path, "not a DetectionSystem checkpoint nor a published model_<acc>_acc_<n>_frames_*.pt")
    from detection.system import DetectionSystem

    accepted = inspect.signature(DetectionSystem.__init__).parameters
    hp = {k: v for k, v in data.get("hyper_parameters", {}).items() if k in accepted}  # drops CLI's _class_path
    hp["pretrained"] = False  # the weights come from the checkpoint
    system = DetectionSystem(**hp)
    try:
        system.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(path, f"weights do not fit the architecture ({str(exc).splitlines()[0]})") from None
    system.model.trunk.to(memory_format=torch.channels_last)  # inference: faster on CPU and GPU alike
    settings = data.get("forgelab_data", {})
    return Detector(system.model.to(dev).eval(), int(settings.get("clip_len", 20)), int(settings.get("size", 112)),
                    "forgelab", str(path), dev)  # fmt: skip


def clip_plan(num_frames: int, clip_len: int, clips: int) -> list[list[int]]:
    """``clips`` runs of ``clip_len`` consecutive frames spread evenly over the whole video."""
    t = min(clip_len, num_frames)
    starts = sorted(set(eval_starts(num_frames, t, 1, clips)))
    return [list(range(s, s + t)) for s in starts]


def analyse(
    video: str | Path,
    detector: Detector,
    extractor: FaceExtractor,
    clips: int = 4,
    frames: int | None = None,
    detect_every: int = 2,
) -> tuple[dict[str, Any], FaceTrack]:
    """Score one video; returns the JSON-ready result and the face track of the scored frames.

    Inside each clip of consecutive frames the face detector runs on every ``detect_every``-th frame
    (and the last); the track interpolates the others.
    """
    clip_len = frames or detector.clip_len
    if clip_len <= 0 or clips <= 0:
        raise ConfigError("--frames and --clips must be positive")
    with VideoReader(video) as reader:
        info = reader.info
        plan = clip_plan(info.num_frames, clip_len, clips)
        wanted = sorted({i for c in plan for i in c})
        track = extractor.extract(reader, wanted, detect_every=detect_every)
    pos = {int(f): i for i, f in enumerate(track.frame_indices)}
    crops = to_tensor_clip(track.crops, None)
    batch = torch.stack([crops[[pos[i] for i in c]] for c in plan])
    scores = detector.p_fake(batch)
    p = float(scores.mean())
    verdict = "FAKE" if p >= 0.5 else "REAL"
    result = {
        "video": str(video),
        "verdict": verdict,
        "confidence": round(100 * max(p, 1 - p), 1),
        "p_fake": round(p, 4),
        "clips": [{"start": c[0], "end": c[-1], "p_fake": round(float(s), 4)} for c, s in zip(plan, scores)],
        "frames_per_clip": len(plan[0]),
        "frames_used": len(wanted),
        "faces_found": int((~track.missing()).sum()),
        "frames_without_face": track.frame_indices[track.missing()].tolist(),
        "frames_interpolated": int(track.interpolated.sum()) if track.interpolated is not None else 0,
        "video_info": {"fps": round(info.fps, 3), "frames": info.num_frames, "size": [info.width, info.height]},
        "detector": {"kind": detector.kind, "checkpoint": detector.path, "input_size": detector.size},
    }
    result["_plan"] = plan
    result["_batch"] = batch
    return result, track


def clip_cams(detector: Detector, result: dict[str, Any]) -> dict[int, np.ndarray]:
    """Grad-CAM heatmap ``[S, S]`` for every scored frame number (see :mod:`detection.cam`)."""
    from detection.cam import grad_cam

    heat: dict[int, np.ndarray] = {}
    for c, clip in zip(result["_plan"], result["_batch"]):
        for f, h in zip(c, grad_cam(detector.module, clip[None].to(detector.device))):
            heat[f] = h
    return heat


def public(result: dict[str, Any]) -> dict[str, Any]:
    """The result without its internal fields."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def print_result(result: dict[str, Any], as_json: bool) -> None:
    """Human-readable line per video, or the JSON document."""
    result = public(result)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    clips = ", ".join(f"{c['start']}-{c['end']}: {c['p_fake']:.2f}" for c in result["clips"])
    faces = f"{result['faces_found']}/{result['frames_used']}"
    print(f"{result['video']}: {result['verdict']} ({result['confidence']:.1f} % confident, p(fake) "
          f"{result['p_fake']:.3f}); clips {clips}; faces in {faces} frames")  # fmt: skip
