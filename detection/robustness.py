"""``forgelab robustness`` as a library: every detector scored on every perturbed copy of a split.

The split's videos are perturbed whole (:mod:`common.perturb`: each type at each level), as a platform
would process them, before any face is found; faces are then tracked on each perturbed video and cut as each
detector's input spec asks (one face-crop cache per perturbed copy and crop spec), and every detector is
scored through the one evaluation protocol (:mod:`detection.protocol`). Everything is cached under the
output folder and reused:

* ``videos/<perturbation>/<level>/<video id>.mp4``: the perturbed videos (made once, for every detector);
* ``faces/<crop spec>/<perturbation>@<level>/``: their face-crop caches (once per crop spec);
* ``cells/<detector>/<perturbation>@<level>.json``: a detector's clip scores on one copy.

A run that stops (interrupted, killed, a full disk) resumes where it was: finished videos, caches and cells are
skipped (each appears only when complete). ``run.json`` records the settings they were made with; a run with
other settings (split, videos, clips, frames, seed, a perturbation's levels) is refused rather than mixed in.
The report compares every cell with the same detector's scores on the clean videos: AUC, AP, accuracy, mean
|delta p(fake)| and the share of clips whose verdict flipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from common.datasets import DatasetIndex, VideoRecord
from common.perturb import Perturbation
from detection.evaluation import ClipScores, summarise
from detection.loading import LoadedDetector
from detection.metrics import DEFAULT_THRESHOLD, figure_array
from detection.models.base import InputSpec

CLEAN = "clean"


class RecordsIndex(DatasetIndex):
    """A fixed list of records (the split's videos, or their perturbed copies)."""

    def __init__(self, records: list[VideoRecord], root: str | Path = "") -> None:
        self._records = list(records)
        self.root = Path(root)

    def records(self) -> list[VideoRecord]:
        return list(self._records)


@dataclass(frozen=True)
class Version:
    """One copy of the split: clean (``perturbation`` None, level 0) or perturbed."""

    perturbation: Perturbation | None
    level: int = 0

    @property
    def key(self) -> str:
        """``clean`` or ``<name>@<level>`` (folder and file names)."""
        return CLEAN if self.perturbation is None else f"{self.perturbation.name}@{self.level}"


def versions(suite: list[Perturbation]) -> list[Version]:
    """The clean copy, then every perturbation at every level."""
    return [Version(None)] + [Version(p, lv) for p in suite for lv in range(1, len(p.levels) + 1)]


def safe_name(video_id: str) -> str:
    """A video id as a relative file path (no ``..``, no absolute part)."""
    parts = [p for p in video_id.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "video"


def spec_key(spec: InputSpec, cache_frames: str) -> str:
    """The folder name of one face-crop cache layout."""
    shape = "sq" if spec.square else "box"
    return f"s{spec.size}_m{spec.margin:g}_{shape}_{spec.resize}_{cache_frames.replace(':', '-')}"


def source_label(path: str | Path) -> str:
    """Which file a detector is: ``<run>/version_N`` for a checkpoint of a training run folder
    (``.../<run>/version_N/checkpoints/x.ckpt``), else the file's name."""
    p = Path(path)
    if p.parent.name == "checkpoints" and p.parent.parent.name.startswith("version_"):
        return f"{p.parent.parent.parent.name}/{p.parent.parent.name}"
    return p.name


def detector_key(path: str | Path) -> str:
    """A detector file's folder name: its label and the start of its content's SHA-1 (so a retrained file with
    the same name never reuses the old one's scores)."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    label = source_label(path).replace("/", "_").rsplit(".", 1)[0]
    return f"{label}-{h.hexdigest()[:10]}"


def _write_json(path: Path, payload: Any) -> None:
    from common.outputs import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, default=float))


@dataclass
class Timing:
    """Where a run's time went, and what it reused."""

    perturb_s: float = 0.0
    videos_made: int = 0
    videos_reused: int = 0
    faces_s: float = 0.0
    videos_tracked: int = 0  # tracked and cut (for every crop layout at once)
    tracks_reused: int = 0
    score_s: float = 0.0
    cells_made: int = 0
    cells_reused: int = 0
    per_kind_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    per_kind_n: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, Any]:
        per_video = {k: round(self.per_kind_s[k] / n, 3) for k, n in self.per_kind_n.items() if n}
        return {"perturb_s": round(self.perturb_s, 2), "videos_made": self.videos_made,
                "videos_reused": self.videos_reused, "faces_s": round(self.faces_s, 2),
                "videos_tracked": self.videos_tracked, "tracks_reused": self.tracks_reused,
                "score_s": round(self.score_s, 2), "cells_made": self.cells_made, "cells_reused": self.cells_reused,
                "seconds_per_perturbed_video": per_video}  # fmt: skip


@dataclass
class RobustnessRun:
    """One robustness evaluation.

    Attributes:
        records: the split's videos (labels 0 / 1).
        split: the split they come from (every record must be in it).
        suite: the perturbation table.
        out: the output (and cache) folder.
        clips: clips per video.
        cache_frames: the frames each face cache keeps (``all``, or e.g. ``first:N`` / ``even:N`` for long
            videos; clips are cut from contiguous runs of them).
        labelled: the labels are known (else only p(fake), its change and flips are reported).
        seed: the noise's seed (with each video's id).
        batch_size: clips per detector call.
        progress: show progress bars.
    """

    records: list[VideoRecord]
    split: str
    suite: list[Perturbation]
    out: Path
    clips: int = 4
    cache_frames: str = "all"
    labelled: bool = True
    seed: int = 0
    batch_size: int = 8
    progress: bool = True
    timing: Timing = field(default_factory=Timing)

    def check_folder(self) -> None:
        """Record this run's settings in ``run.json``, or refuse a folder whose cached videos, caches and scores
        were made with other ones (another split, set of videos, clips per video, frames, seed, or a
        perturbation of the same name with other levels); new perturbations and detectors may be added.

        Raises:
            ConfigError: the folder holds a run with other settings.
        """
        from common.datasets import index_hash
        from common.errors import ConfigError

        suite = {p.name: {"kind": p.kind, "levels": list(p.levels), "generations": p.generations} for p in self.suite}
        mine = {"split": self.split, "videos": index_hash(self.records), "clips": self.clips,
                "cache_frames": self.cache_frames, "seed": self.seed}  # fmt: skip
        path = self.out / "run.json"
        if path.is_file():
            old = json.loads(path.read_text())
            for key, value in mine.items():
                if old.get(key) != value:
                    raise ConfigError(f"{self.out} holds a robustness run made with {key}={old.get(key)!r}, not "
                                      f"{value!r}: use another --out (or delete it)")  # fmt: skip
            for name, entry in suite.items():
                if name in old.get("suite", {}) and old["suite"][name] != entry:
                    raise ConfigError(f"{self.out} holds perturbation {name!r} made with {old['suite'][name]}, not "
                                      f"{entry}: rename it in the table, or use another --out")  # fmt: skip
            suite = {**old.get("suite", {}), **suite}
        _write_json(path, {**mine, "suite": suite})

    def version_records(self, version: Version) -> list[VideoRecord]:
        """The records of one copy, its perturbed videos made when missing (a video that cannot be perturbed,
        e.g. one that does not decode, keeps a path that does not exist and is scored as a failure)."""
        from common.errors import ForgelabError
        from common.perturb import perturb_video

        if version.perturbation is None:
            return list(self.records)
        p = version.perturbation
        folder = self.out / "videos" / p.name / str(version.level)
        out = []
        for r in self.records:
            dst = folder / f"{safe_name(r.video_id)}.mp4"
            if dst.is_file():
                self.timing.videos_reused += 1
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                start = time.perf_counter()
                with contextlib.suppress(ForgelabError):  # no file: the protocol lists the video as failed, with why
                    perturb_video(r.path, dst, p, version.level, seed=self.seed + zlib.crc32(r.video_id.encode()))
                spent = time.perf_counter() - start
                self.timing.perturb_s += spent
                self.timing.per_kind_s[p.name] += spent
                self.timing.per_kind_n[p.name] += 1
                self.timing.videos_made += 1
            out.append(replace(r, path=str(dst)))
        return out

    def layout(self, spec: InputSpec) -> tuple[str, Any]:
        """A detector's face-crop layout: its folder name and preprocessing settings."""
        from common.preprocess import PreprocessConfig

        config = PreprocessConfig(frames=self.cache_frames, crop_size=spec.size, margin=spec.margin,
                                  square=spec.square, resample=spec.resize)  # fmt: skip
        return spec_key(spec, self.cache_frames), config

    def face_caches(self, records: list[VideoRecord], version: Version, specs: list[InputSpec]) -> None:
        """The face-crop caches of one copy for every crop layout in ``specs`` (each video tracked once for all
        of them; finished entries skipped)."""
        from common.preprocess import layout_caches

        layouts = dict(self.layout(s) for s in specs)
        caches = [(self.out / "faces" / key / version.key, config) for key, config in layouts.items()]
        start = time.perf_counter()
        counts = layout_caches([r for r in records if Path(r.path).exists()], caches)
        self.timing.faces_s += time.perf_counter() - start
        self.timing.videos_tracked += counts["ok"] + counts["failed"]
        self.timing.tracks_reused += counts["skipped"]

    def cell_path(self, key: str, version: Version) -> Path:
        """Where a detector's scores on one copy are kept."""
        return self.out / "cells" / key / f"{version.key}.json"

    def cell(self, detector: LoadedDetector, key: str, records: list[VideoRecord], version: Version) -> ClipScores:
        """A detector's clip scores on one copy (read back when a previous run finished it; the copy's face
        caches must exist, :meth:`face_caches`)."""
        from detection.protocol import Protocol, score_split

        path = self.cell_path(key, version)
        if path.is_file():
            self.timing.cells_reused += 1
            return ClipScores.from_rows(tuple(r) for r in json.loads(path.read_text())["rows"])
        cache = self.out / "faces" / self.layout(detector.spec)[0] / version.key
        protocol = Protocol(RecordsIndex(records), self.split, self.clips, None, cache, False, None, self.batch_size)
        start = time.perf_counter()
        scored = score_split(detector, protocol, progress=False)
        self.timing.score_s += time.perf_counter() - start
        self.timing.cells_made += 1
        _write_json(path, {"version": version.key, "rows": scored.clips.rows(),
                           "frames_per_s": scored.frames_per_s})  # fmt: skip
        return scored.clips


def clip_keys(clips: ClipScores) -> list[tuple[str, int]]:
    """``(video id, n)``: the n-th clip of each video (clips are cut at the same places in every copy)."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for v in clips.video_ids:
        out.append((v, seen[v]))
        seen[v] += 1
    return out


def cell_metrics(clips: ClipScores, clean: ClipScores, aggregation: str, labelled: bool,
                 threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:  # fmt: skip
    """One cell's figures against the clean copy.

    Returns:
        ``auc``, ``ap``, ``acc`` (clip level; ``None`` without labels or with one class), ``video_auc``,
        ``mean_p_fake`` (and per class), ``mean_abs_delta`` (mean |p - p_clean| over the clips both copies have),
        ``flips`` (share of those clips whose verdict, p >= threshold, changed), ``clips``, ``failed_videos``.
    """
    report = summarise(clips, aggregation, threshold)
    c, v = report["clip_level"], report["video_level"]
    both_classes = labelled and len(set(clips.labels)) == 2

    def metric(value: float) -> float | None:
        return None if not both_classes or value is None or np.isnan(value) else round(float(value), 4)

    before = dict(zip(clip_keys(clean), clean.scores))
    pairs = [(p, before[k]) for k, p in zip(clip_keys(clips), clips.scores) if k in before]
    now, then = (np.array(x, np.float64) for x in zip(*pairs)) if pairs else (np.zeros(0), np.zeros(0))
    scores, labels = np.asarray(clips.scores), np.asarray(clips.labels)
    per_class = {f"mean_p_fake_{name}": round(float(scores[labels == y].mean()), 4)
                 for y, name in ((0, "real"), (1, "fake")) if labelled and (labels == y).any()}  # fmt: skip
    return {
        "auc": metric(c["auc"]), "ap": metric(c["ap"]), "acc": metric(c["acc"]) if labelled else None,
        "video_auc": metric(v["auc"]), "mean_p_fake": round(float(scores.mean()), 4) if len(scores) else None,
        **per_class,
        "mean_abs_delta": round(float(np.abs(now - then).mean()), 4) if len(now) else None,
        "flips": round(float(((now >= threshold) != (then >= threshold)).mean()), 4) if len(now) else None,
        "clips": len(clips), "failed_videos": report["n_failed"],
    }  # fmt: skip


def evaluate_robustness(run: RobustnessRun, detectors: list[LoadedDetector]) -> dict[str, Any]:
    """Score every detector on every copy; returns the report (see :func:`write_report`)."""
    from tqdm import tqdm

    run.out.mkdir(parents=True, exist_ok=True)
    run.check_folder()
    keys = [detector_key(d.path) for d in detectors]
    table: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in keys}
    clean: dict[str, ClipScores] = {}
    all_versions = versions(run.suite)
    bar = tqdm(total=len(all_versions) * len(detectors), desc="robustness", unit="cell", disable=not run.progress)
    for version in all_versions:
        bar.set_postfix_str(version.key)
        records = run.version_records(version)
        todo = [d.spec for d, k in zip(detectors, keys) if not run.cell_path(k, version).is_file()]
        if todo:
            run.face_caches(records, version, todo)
        for detector, key in zip(detectors, keys):
            scores = run.cell(detector, key, records, version)
            if version.perturbation is None:
                clean[key] = scores
            name = CLEAN if version.perturbation is None else version.perturbation.name
            table[key].setdefault(name, {})[str(version.level)] = cell_metrics(
                scores, clean[key], detector.spec.aggregation, run.labelled
            )
            bar.update(1)
    bar.close()
    return {
        "split": run.split, "clips_per_video": run.clips, "videos": len(run.records),
        "labelled": run.labelled,
        "classes": {"real": sum(r.label == 0 for r in run.records), "fake": sum(r.label == 1 for r in run.records)},
        "suite": {p.name: {"kind": p.kind, "levels": list(p.levels), "generations": p.generations}
                  for p in run.suite},
        "detectors": [{"name": d.module.describe()["name"], "file": source_label(d.path), "key": k,
                       "cells": table[k]} for d, k in zip(detectors, keys)],
        "timing": run.timing.as_dict(),
    }  # fmt: skip


def headline(cell: dict[str, Any]) -> float | None:
    """The figure a table shows for a cell: AUC, else (one class or no labels) mean p(fake)."""
    return cell["auc"] if cell.get("auc") is not None else cell.get("mean_p_fake")


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a summary (mean over levels 1-5 per perturbation) and one table per detector."""
    suite = report["suite"]
    auc = any(c.get("auc") is not None for d in report["detectors"] for p in d["cells"].values() for c in p.values())
    what = "clip AUC" if auc else "mean p(fake)"
    lines = [f"# Robustness: {what} under perturbations", "",
             f"Split `{report['split']}`: {report['videos']} videos ({report['classes']['real']} real, "
             f"{report['classes']['fake']} fake), {report['clips_per_video']} clips per video. Levels 1-5 are "
             "DeeperForensics-1.0's (the `jpeg` row: ours); level 0 is the clean video.", "",
             f"## Summary: {what} on clean videos and mean over levels 1-5", "",
             "| detector | clean | " + " | ".join(suite) + " |", "|---|---|" + "---|" * len(suite)]  # fmt: skip

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    for d in report["detectors"]:
        cells = d["cells"]
        means = []
        for name in suite:
            vals = [headline(c) for lv, c in cells.get(name, {}).items() if lv != "0"]
            vals = [v for v in vals if v is not None]
            means.append(f(float(np.mean(vals)) if vals else None))
        lines.append(f"| {d['name']} (`{d['file']}`) | {f(headline(cells[CLEAN]['0']))} | " + " | ".join(means) + " |")
    for d in report["detectors"]:
        cells = d["cells"]
        n = max(len(p["levels"]) for p in suite.values()) if suite else 0
        lines += ["", f"## {d['name']} (`{d['file']}`)", "",
                  f"{what} by level; in brackets: mean abs(delta p(fake)) vs clean, share of verdicts flipped (and "
                  "videos lost: no face found, scored 0.5).", "",
                  "| perturbation | " + " | ".join(str(i) for i in range(n + 1)) + " |",
                  "|---|" + "---|" * (n + 1)]  # fmt: skip
        clean = cells[CLEAN]["0"]
        for name in suite:
            row = [f(headline(clean))]
            for lv in range(1, n + 1):
                c = cells.get(name, {}).get(str(lv))
                lost = f", {c['failed_videos']} lost" if c and c["failed_videos"] else ""
                row.append("" if c is None else f"{f(headline(c))} ({f(c['mean_abs_delta'])}, {f(c['flips'])}{lost})")
            lines.append(f"| {name} | " + " | ".join(row) + " |")
    t = report["timing"]
    lines += ["", f"Time: perturbing {t['perturb_s']} s ({t['videos_made']} videos made, {t['videos_reused']} "
              f"reused), face tracking {t['faces_s']} s ({t['videos_tracked']} videos tracked, {t['tracks_reused']} "
              f"reused), scoring {t['score_s']} s ({t['cells_made']} cells scored, {t['cells_reused']} reused).",
              ""]  # fmt: skip
    return "\n".join(lines)


def chart(detector: dict[str, Any], suite: dict[str, Any]) -> np.ndarray:
    """One detector's AUC (or mean p(fake)) against the level, a line per perturbation, as RGB ``[H, W, 3]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = detector["cells"]
    auc = any(c.get("auc") is not None for p in cells.values() for c in p.values())
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    for name in suite:
        levels = sorted(int(lv) for lv in cells.get(name, {}))
        ys = [headline(cells[CLEAN]["0"])] + [headline(cells[name][str(lv)]) for lv in levels]
        ax.plot([0, *levels], [np.nan if y is None else y for y in ys], marker="o", label=name)
    if auc:
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("level (0 = clean)")
    ax.set_ylabel("clip AUC" if auc else "mean p(fake)")
    ax.set_title(f"{detector['name'][:70]} ({detector['file']})", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    return figure_array(fig)


def write_report(report: dict[str, Any], out: Path) -> Path:
    """``robustness.json``, ``robustness.md`` and ``robustness_<detector>.png`` in ``out``, all or nothing."""
    from common.outputs import write_all

    files: dict[str, Any] = {"robustness.json": json.dumps(report, indent=1, default=float),
                             "robustness.md": markdown(report)}  # fmt: skip
    for d in report["detectors"]:
        files[f"robustness_{d['key']}.png"] = chart(d, report["suite"])
    return write_all(out, files)["robustness.md"]
