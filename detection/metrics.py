"""Detection metrics at clip and video level: AUC, AP, EER, accuracy; video aggregation rules; plots.

Scores are p(fake) (label 1 = fake). A video's score aggregates its clips' (or frames') scores:
``mean`` (the field's default), ``max``, or ``confident`` (the DFDC winner's rule: if more than
max(11, n/2.5) scores exceed 0.8 average those; else if more than 90 % are below 0.2 average those;
else the plain mean).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_average_precision,
    binary_confusion_matrix,
    binary_roc,
)


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


def eer(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Equal error rate: where the false-positive rate equals the false-negative rate."""
    fpr, tpr, _ = binary_roc(scores, labels)
    fnr = 1 - tpr
    i = int(torch.argmin((fnr - fpr).abs()))
    return float((fpr[i] + fnr[i]) / 2)


def binary_metrics(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> dict[str, float]:
    """ACC (threshold 0.5), AUC, AP, EER and counts; AUC/AP/EER are NaN when only one class is present."""
    s = torch.as_tensor(np.asarray(scores, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    out = {"acc": float(binary_accuracy(s, y)), "n": int(len(y)), "n_fake": int(y.sum()), "n_real": int((1 - y).sum())}
    if 0 < int(y.sum()) < len(y):
        out.update(auc=float(binary_auroc(s, y)), ap=float(binary_average_precision(s, y)), eer=eer(s, y))
    else:
        out.update(auc=float("nan"), ap=float("nan"), eer=float("nan"))
    return out


def confusion(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """2x2 counts, rows = true (real, fake), columns = predicted (real, fake), threshold 0.5."""
    s = torch.as_tensor(np.asarray(scores, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return binary_confusion_matrix(s, y).numpy()


def _figure_to_tensor(fig) -> torch.Tensor:  # noqa: ANN001
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return torch.from_numpy(rgba).permute(2, 0, 1).float() / 255


def roc_image(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, title: str) -> torch.Tensor:
    """ROC curve as an image tensor ``[3, H, W]`` in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    m = binary_metrics(scores, labels)
    if not np.isnan(m["auc"]):
        fpr, tpr, _ = binary_roc(torch.as_tensor(np.asarray(scores, np.float32)), torch.as_tensor(np.asarray(labels)))
        ax.plot(fpr.numpy(), tpr.numpy(), lw=2, label=f"AUC {m['auc']:.3f}, EER {m['eer']:.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _figure_to_tensor(fig)


def confusion_image(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, title: str
                    ) -> torch.Tensor:  # fmt: skip
    """Confusion matrix (threshold 0.5) as an image tensor ``[3, H, W]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = confusion(scores, labels)
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
