"""The one evaluation routine: clip scores -> clip- and video-level metrics, failures, plots.

Used by :class:`~detection.system.DetectionSystem` (validation and test) and by ``forgelab evaluate``. A clip
that could not be read (the batch's ``failure`` field: a video that does not decode, has no face, or has no
cache entry) scores 0.5 (the DFDC / Celeb-DF convention), is counted, and its video is listed with the
reason, so no video ever drops out of a result silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detection.metrics import DEFAULT_THRESHOLD, aggregate, binary_metrics, confusion, confusion_image, roc_image
from detection.models.base import p_fake

FAILED_SCORE = 0.5


@dataclass
class ClipScores:
    """p(fake) of evaluated clips with their labels and video ids, and the reason of every failed video."""

    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    video_ids: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def add(self, p_fake: Sequence[float], batch: dict[str, Any]) -> None:
        """Record a batch's scores; clips with a ``failure`` score :data:`FAILED_SCORE`."""
        failures = batch.get("failure") or [""] * len(p_fake)
        for p, y, vid, why in zip(p_fake, batch["label"].tolist(), batch["video_id"], failures):
            if why:
                self.failures.setdefault(vid, why)
                p = FAILED_SCORE
            self.scores.append(float(p))
            self.labels.append(int(y))
            self.video_ids.append(vid)

    def rows(self) -> list[tuple[float, int, str, str]]:
        """Picklable rows (for gathering across processes)."""
        return [(s, y, v, self.failures.get(v, "")) for s, y, v in zip(self.scores, self.labels, self.video_ids)]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[float, int, str, str]]) -> ClipScores:
        out = cls()
        for s, y, v, why in rows:
            out.scores.append(s)
            out.labels.append(y)
            out.video_ids.append(v)
            if why:
                out.failures.setdefault(v, why)
        return out

    def __len__(self) -> int:
        return len(self.scores)


def readable(batch: dict[str, Any]) -> list[int]:
    """Indices of the clips of a batch that were read (no ``failure``)."""
    failures = batch.get("failure") or [""] * len(batch["label"])
    return [i for i, why in enumerate(failures) if not why]


def with_failures(n: int, ok: Sequence[int], logits: torch.Tensor | None) -> list[float]:
    """p(fake) of ``n`` clips: from ``logits [len(ok), 2]`` for the readable ones, :data:`FAILED_SCORE` else."""
    out = [FAILED_SCORE] * n
    if logits is not None:
        for i, p in zip(ok, p_fake(logits.detach()).cpu().tolist()):
            out[i] = p
    return out


@torch.no_grad()
def score_batch(detector: torch.nn.Module, batch: dict[str, Any], device: torch.device) -> list[float]:
    """p(fake) of every clip of a batch (clips that failed to load are not run through the detector)."""
    ok = readable(batch)
    logits = detector(batch["video"][ok].to(device)) if ok else None
    return with_failures(len(batch["label"]), ok, logits)


def summarise(clips: ClipScores, aggregation: str = "mean", threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """The metrics report: clip and video level ACC/AUC/AP/EER, the video confusion matrix, failed videos."""
    v_scores, v_labels, v_ids = aggregate(clips.scores, clips.labels, clips.video_ids, aggregation)
    label_of = dict(zip(v_ids, v_labels.tolist()))
    return {
        "aggregation": aggregation,
        "threshold": threshold,
        "clip_level": binary_metrics(clips.scores, clips.labels, threshold),
        "video_level": binary_metrics(v_scores, v_labels, threshold),
        "video_confusion": confusion(v_scores, v_labels, threshold).tolist(),
        "failed_videos": [
            {"video_id": v, "label": int(label_of.get(v, -1)), "reason": why, "score": FAILED_SCORE}
            for v, why in sorted(clips.failures.items())
        ],  # fmt: skip
        "n_failed": len(clips.failures),
    }


def report_images(clips: ClipScores, aggregation: str = "mean", threshold: float = DEFAULT_THRESHOLD
                  ) -> dict[str, torch.Tensor]:  # fmt: skip
    """ROC curves (clip and video level) and the video-level confusion matrix as image tensors ``[3, H, W]``."""
    v_scores, v_labels, _ = aggregate(clips.scores, clips.labels, clips.video_ids, aggregation)
    return {
        "roc_clip": roc_image(clips.scores, clips.labels, "ROC (clip level)"),
        "roc_video": roc_image(v_scores, v_labels, "ROC (video level)"),
        "confusion_video": confusion_image(v_scores, v_labels, "confusion (video level)", threshold),
    }


def write_report(report: dict[str, Any], images: dict[str, torch.Tensor], out: Path) -> Path:
    """``metrics.json`` and one PNG per image in ``out``, all or nothing: every file is written under a
    temporary name first and the set is renamed into place only when all were written (a full disk leaves
    no report without its pictures, and no temporary file)."""
    from common.outputs import write_all

    files: dict[str, Any] = {f"{name}.png": (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                             for name, image in images.items()}  # fmt: skip
    files["metrics.json"] = json.dumps(report, indent=2)
    return write_all(out, files)["metrics.json"]
