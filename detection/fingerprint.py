"""``forgelab fingerprint`` as a library: convolutional-trace fingerprints of a dataset's face crops, k-NN / SVM /
LDA classifiers fitted on the training split and evaluated on the validation (or test) split with the one
evaluation routine every detector uses (:mod:`detection.evaluation`).

The fingerprints of each split are computed once per kernel size and cached in the output folder
(``fingerprints_k<N>.pt``: features, labels, video ids, failures, plus the settings they were computed with);
every classifier is then fitted on the cache in milliseconds to seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common.errors import ConfigError
from detection.evaluation import ClipScores, readable, summarise


@dataclass
class Fingerprints:
    """The fingerprints of one split.

    Attributes:
        features: ``[N, D]`` one per face crop (clips of one frame).
        labels: ``[N]`` (1 = fake).
        video_ids: the video of each crop.
        failures: ``{video_id: (label, reason)}`` of the videos that could not be read (scored 0.5 by the
            evaluation).
        seconds: time spent in the EM (face crops read or cut not counted).
    """

    features: torch.Tensor
    labels: torch.Tensor
    video_ids: list[str]
    failures: dict[str, tuple[int, str]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "labels": self.labels, "video_ids": self.video_ids,
                "failures": self.failures, "seconds": self.seconds}  # fmt: skip


def collect(extract: Callable[[torch.Tensor], torch.Tensor], loader: Any, desc: str) -> Fingerprints:
    """``extract(video [B, T, 3, S, S]) -> [B*T, D]`` (one vector per frame: a fingerprint, a bottleneck) of every
    readable crop a loader yields, averaged over each clip's frames (clips of one frame: one vector per crop)."""
    from tqdm import tqdm

    feats, labels, ids, failures = [], [], [], {}
    seconds = 0.0
    for batch in tqdm(loader, desc=desc, unit="batch"):
        ok = readable(batch)
        for i, why in enumerate(batch.get("failure") or []):
            if why:
                failures.setdefault(batch["video_id"][i], (int(batch["label"][i]), why))
        if not ok:
            continue
        video = batch["video"][ok]
        start = time.perf_counter()
        feats.append(extract(video).view(len(ok), video.shape[1], -1).mean(1))
        seconds += time.perf_counter() - start
        labels.append(batch["label"][ok])
        ids.extend(batch["video_id"][i] for i in ok)
    if not feats:
        raise ConfigError(f"{desc}: no face crop could be read")
    return Fingerprints(torch.cat(feats), torch.cat(labels).long(), ids, failures, seconds)


def cached(path: Path, settings: dict[str, Any], make: Any) -> Fingerprints:
    """The fingerprints stored at ``path`` when they were computed with ``settings``, else ``make()`` (stored)."""
    from common.outputs import atomic_path
    from common.weights import read_checkpoint

    if path.is_file():
        data = read_checkpoint(path)
        if data.get("settings") == settings:
            failures = {k: (int(v[0]), str(v[1])) for k, v in dict(data["failures"]).items()}
            return Fingerprints(data["features"], data["labels"], list(data["video_ids"]), failures,
                                float(data["seconds"]))  # fmt: skip
    prints = make()
    with atomic_path(path) as tmp:
        torch.save({"settings": settings, **prints.to_dict()}, tmp)
    return prints


def cached_splits(dm: Any, extract: Callable[[torch.Tensor], torch.Tensor], out: Path, name: str,
                  settings: dict[str, Any], eval_split: str) -> tuple[Fingerprints, Fingerprints]:  # fmt: skip
    """The training and ``eval_split`` vectors of a data module's crops, each cached as ``out/<name>_<split>.pt``
    (:func:`cached`, :func:`collect`)."""
    train, held = (
        cached(out / f"{name}_{split}.pt", settings, lambda s=split: collect(extract, dm.dataloader(s), f"{name} {s}"))
        for split in ("train", eval_split)
    )
    return train, held


def evaluate(p_fake: Callable[[torch.Tensor], torch.Tensor], prints: Fingerprints) -> dict[str, Any]:
    """The evaluation report of a fitted detector (``p_fake(features [N, D]) -> [N]``) on one split's cached
    vectors (failed videos score 0.5)."""
    scores = ClipScores()
    p = p_fake(prints.features).tolist()
    scores.add(p, {"label": prints.labels, "video_id": prints.video_ids})
    if prints.failures:
        ids = list(prints.failures)
        scores.add([0.5] * len(ids), {"label": torch.tensor([prints.failures[v][0] for v in ids]), "video_id": ids,
                                      "failure": [prints.failures[v][1] for v in ids]})  # fmt: skip
    return summarise(scores, "mean")


def write_leaderboard(rows: list[dict[str, Any]], out: Path) -> Path:
    """``results.json`` and ``results.md`` (one row per kernel size x classifier) in ``out``; returns the table."""
    import json

    from common.outputs import write_all

    head = "| kernel | classifier | split | clip AUC | clip ACC | video AUC | train / eval crops | crops/s | file |\n"
    head += "|---|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['kernel']}x{r['kernel']} | {r['classifier'].upper()} | {r['split']} | {r['clip_auc']:.3f} | "
        f"{r['clip_acc']:.3f} | {r['video_auc']:.3f} | {r['train_fingerprints']} / {r['eval_fingerprints']} | "
        f"{r['crops_per_s']:.1f} | `{Path(r['file']).name}` |\n"
        for r in rows
    )
    return write_all(out, {"results.json": json.dumps(rows, indent=1), "results.md": head + body})["results.md"]
