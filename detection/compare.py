"""``forgelab compare`` as a library: several detectors through one protocol (:mod:`detection.protocol`), one
leaderboard (Markdown, CSV and a bar chart)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from detection.evaluation import summarise
from detection.loading import LoadedDetector
from detection.metrics import figure_array
from detection.protocol import Protocol, SplitScores

COLUMNS = ("detector", "file", "clip_auc", "clip_ap", "clip_eer", "clip_acc", "video_auc", "video_acc", "clips",
           "failed_videos", "frames_per_clip", "inference_frames_per_s", "params_m", "train_seconds")  # fmt: skip


def row(detector: LoadedDetector, scored: SplitScores, threshold: float = 0.5) -> tuple[dict[str, Any], dict]:
    """One leaderboard row and the full evaluation report of a scored detector."""
    report = summarise(scored.clips, detector.spec.aggregation, threshold)
    c, v = report["clip_level"], report["video_level"]
    params = sum(p.numel() for p in detector.module.parameters())
    out = {"detector": detector.module.describe()["name"], "file": Path(detector.path).name,
           "clip_auc": c["auc"], "clip_ap": c["ap"], "clip_eer": c["eer"], "clip_acc": c["acc"],
           "video_auc": v["auc"], "video_acc": v["acc"], "clips": c["n"], "failed_videos": report["n_failed"],
           "frames_per_clip": scored.frames_per_clip, "inference_frames_per_s": round(scored.frames_per_s, 2),
           "params_m": round(params / 1e6, 3), "train_seconds": detector.train_seconds}  # fmt: skip
    return out, report


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows by clip AUC, best first (a detector without an AUC last)."""
    return sorted(rows, key=lambda r: -np.nan_to_num(r["clip_auc"], nan=-1))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "n/a" if np.isnan(value) else f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def markdown(rows: list[dict[str, Any]], protocol: Protocol) -> str:
    """The leaderboard as a Markdown table, best clip AUC first, with the protocol it was measured on."""
    heads = ("detector", "clip AUC", "clip AP", "clip EER", "clip ACC", "video AUC", "clips", "failed",
             "frames/clip", "inference frames/s", "params (M)", "training (s)", "file")  # fmt: skip
    keys = ("detector", "clip_auc", "clip_ap", "clip_eer", "clip_acc", "video_auc", "clips", "failed_videos",
            "frames_per_clip", "inference_frames_per_s", "params_m", "train_seconds", "file")  # fmt: skip
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in ranked(rows):
        lines.append("| " + " | ".join(f"`{r[k]}`" if k == "file" else _fmt(r[k]) for k in keys) + " |")
    root = getattr(protocol.index, "root", None) or getattr(protocol.index, "path", "")
    blend = ", self-blended pseudo-fakes of the real videos" if protocol.self_blend else ""
    note = (
        f"\nProtocol: {type(protocol.index).__name__} `{Path(str(root)).name}`, split `{protocol.split}`, "
        f"{protocol.clips} clips per video{blend}; each detector's own crops (size, margin, frames). Inference "
        "frames/s: the detector's forward passes only (face crops not counted), this machine; training (s): "
        "recorded by the detector's fit, '-' for published weights.\n"
    )
    return "\n".join(lines) + "\n" + note


def csv_text(rows: list[dict[str, Any]]) -> str:
    """The leaderboard as CSV (:data:`COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def chart(rows: list[dict[str, Any]]) -> np.ndarray:
    """A bar chart of clip and video AUC per detector (chance at 0.5) as an RGB array ``[H, W, 3]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ranked(rows)
    names = [r["detector"] if len(r["detector"]) <= 64 else r["detector"][:62] + "..." for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(11, 1.0 + 0.55 * len(rows)), dpi=100)
    clip = [np.nan_to_num(r["clip_auc"], nan=0.0) for r in rows]
    video = [np.nan_to_num(r["video_auc"], nan=0.0) for r in rows]
    ax.barh(y - 0.2, clip, height=0.38, label="clip AUC", color="#3b7dd8")
    ax.barh(y + 0.2, video, height=0.38, label="video AUC", color="#f0a030")
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("AUC (0.5 = chance)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return figure_array(fig)


def write_leaderboard(rows: list[dict[str, Any]], reports: list[dict[str, Any]], protocol: Protocol, out: Path) -> Path:
    """``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.png`` and ``reports.json`` in ``out``, all or nothing
    (written under temporary names, renamed into place together)."""
    import json

    from common.outputs import write_all

    files = {"leaderboard.md": markdown(rows, protocol), "leaderboard.csv": csv_text(rows),
             "reports.json": json.dumps(reports, indent=1, default=float), "leaderboard.png": chart(rows)}  # fmt: skip
    return write_all(out, files)["leaderboard.md"]
