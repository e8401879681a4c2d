"""Detection metrics at clip and video level: AUC, AP, EER, accuracy; video aggregation rules; plots.

Scores are p(fake) (label 1 = fake); :func:`is_fake` is the one decision rule (``p > threshold``) used by
accuracy, the confusion matrix and every verdict. A video's score aggregates its clips' (or frames') scores:
``mean`` (the field's default), ``max``, or ``confident`` (the DFDC winner's rule: if more than
max(11, n/2.5) scores exceed 0.8 average those; else if more than 90 % are below 0.2 average those;
else the plain mean).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

DEFAULT_THRESHOLD = 0.5


def is_fake(p_fake: float | np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> bool | np.ndarray:
    """The decision rule: FAKE when p(fake) is strictly above ``threshold``."""
    return np.asarray(p_fake) > threshold if isinstance(p_fake, np.ndarray) else bool(p_fake > threshold)


def confident_mean(scores: np.ndarray) -> float:
    """The DFDC winner's aggregation of one video's scores."""
    n = len(scores)
    high = scores[scores > 0.8]
    if len(high) > max(11, n / 2.5):
        return float(high.mean())
    low = scores[scores < 0.2]
    if len(low) > 0.9 * n:
        return float(low.mean())
    return float(scores.mean())


AGGREGATIONS = {"mean": lambda s: float(np.mean(s)), "max": lambda s: float(np.max(s)), "confident": confident_mean}


def aggregate(scores: Sequence[float], labels: Sequence[int], video_ids: Sequence[str], rule: str = "mean"
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:  # fmt: skip
    """Clip/frame scores -> one score and label per video (sorted by id)."""
    if rule not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {sorted(AGGREGATIONS)}, not {rule!r}")
    by_video: dict[str, list[float]] = defaultdict(list)
    label_of: dict[str, int] = {}
    for s, y, v in zip(scores, labels, video_ids):
        by_video[v].append(float(s))
        label_of[v] = int(y)
    ids = sorted(by_video)
    return (
        np.array([AGGREGATIONS[rule](np.array(by_video[v])) for v in ids]),
        np.array([label_of[v] for v in ids]),
        ids,
    )


def binary_metrics(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                   threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:  # fmt: skip
    """ACC (:func:`is_fake` at ``threshold``), AUC, AP, EER and counts; AUC/AP/EER are NaN for a single class."""
    s_np = np.asarray(scores, dtype=np.float32)
    y_np = np.asarray(labels, dtype=np.int64)
    acc = float((is_fake(s_np, threshold) == (y_np == 1)).mean()) if len(y_np) else float("nan")
    out = {"acc": acc, "n": int(len(y_np)), "n_fake": int(y_np.sum()), "n_real": int((1 - y_np).sum())}
    if 0 < int(y_np.sum()) < len(y_np):
        from torchmetrics.functional.classification import binary_auroc, binary_average_precision, binary_eer

        s, y = torch.as_tensor(s_np), torch.as_tensor(y_np)
        out.update(auc=float(binary_auroc(s, y)), ap=float(binary_average_precision(s, y)), eer=float(binary_eer(s, y)))
    else:
        out.update(auc=float("nan"), ap=float("nan"), eer=float("nan"))
    return out


def confusion(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
              threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:  # fmt: skip
    """2x2 counts, rows = true (real, fake), columns = predicted (real, fake) by :func:`is_fake`."""
    pred = is_fake(np.asarray(scores, dtype=np.float32), threshold).astype(int)
    y = np.asarray(labels, dtype=np.int64)
    return np.array([[int(((y == t) & (pred == p)).sum()) for p in (0, 1)] for t in (0, 1)])


def figure_array(fig: Any) -> np.ndarray:
    """A drawn matplotlib figure as RGB uint8 ``[H, W, 3]``; the figure is closed."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


def _figure_to_tensor(fig: Any) -> torch.Tensor:
    return torch.from_numpy(figure_array(fig)).permute(2, 0, 1).float() / 255


def roc_image(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, title: str) -> torch.Tensor:
    """ROC curve as an image tensor ``[3, H, W]`` in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    m = binary_metrics(scores, labels)
    if not np.isnan(m["auc"]):
        from torchmetrics.functional.classification import binary_roc

        fpr, tpr, _ = binary_roc(torch.as_tensor(np.asarray(scores, np.float32)), torch.as_tensor(np.asarray(labels)))
        ax.plot(fpr.numpy(), tpr.numpy(), lw=2, label=f"AUC {m['auc']:.3f}, EER {m['eer']:.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _figure_to_tensor(fig)


def confusion_image(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, title: str,
                    threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:  # fmt: skip
    """Confusion matrix (:func:`is_fake` at ``threshold``) as an image tensor ``[3, H, W]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = confusion(scores, labels, threshold)
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=80)
    ax.imshow(cm, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=14,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")  # fmt: skip
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["real", "fake"], yticklabels=["real", "fake"],
           xlabel="predicted", ylabel="true", title=title)  # fmt: skip
    fig.tight_layout()
    return _figure_to_tensor(fig)
