"""The convolutional-trace detector (Guarnera et al., IEEE Access 2020; seed 002): per face crop, the EM estimate
of the convolution kernel of each colour channel (:mod:`detection.traces`), classified by a classic classifier
(k-NN, SVM or LDA from scikit-learn).

Saved files are safe to load: a fitted scikit-learn estimator is a pickle (loading one runs code), so a
fingerprint file holds the training fingerprints and labels as tensors, read with ``torch.load(weights_only=True)``,
and the classifier is fitted again from them when the file is loaded (deterministic, milliseconds to seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from common.errors import CheckpointError, ConfigError
from detection.models.base import Detector, InputSpec, logits_from_p_fake

Classifier = Literal["knn", "svm", "lda"]
FILE_KIND = "forgelab-conv-traces"  # the "kind" entry of a fingerprint file


def make_classifier(name: Classifier, neighbours: int = 5, seed: int = 0) -> Any:
    """An unfitted scikit-learn pipeline: standardised fingerprints -> k-NN (``neighbours``, odd), an RBF SVM whose
    scores are calibrated into probabilities (Platt scaling, cross-validated), or linear discriminant analysis."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if name == "knn":
        head: Any = KNeighborsClassifier(n_neighbors=neighbours)
    elif name == "svm":
        head = CalibratedClassifierCV(SVC(kernel="rbf", random_state=seed), method="sigmoid", cv=3, ensemble=False)
    elif name == "lda":
        head = LinearDiscriminantAnalysis()
    else:
        raise ConfigError(f"classifier must be knn, svm or lda, not {name!r}")
    return make_pipeline(StandardScaler(), head)


class ConvTraceDetector(Detector):
    """Convolutional traces + a classic classifier, behind the detector interface.

    Args:
        kernel: EM kernel side N (3, 4 or 5).
        classifier: ``knn``, ``svm`` or ``lda``.
        neighbours: k of the k-NN classifier.
        iterations: EM iterations at most.
        size: face-crop side the fingerprints are computed at.
        margin: face-crop margin.
        grid: fingerprints per crop, one per tile of a ``grid x grid`` tiling, concatenated (1: the paper's one per
            image). Tiles let the classifier compare the face's centre with its border, where a blended face's
            resampling shows.

    Forward: ``video [B, T, 3, H, W]`` RGB in [0, 1] -> logits ``[B, 2]``: each frame's p(fake), averaged over the
    clip. Not differentiable; it is fitted with :meth:`fit` (``forgelab fingerprint``), not by gradient descent.
    """

    def __init__(self, kernel: int = 3, classifier: Classifier = "knn", neighbours: int = 5, iterations: int = 50,
                 size: int = 128, margin: float = 1.3, grid: int = 1) -> None:  # fmt: skip
        super().__init__()
        if kernel < 2:
            raise ConfigError(f"kernel must be at least 2, not {kernel}")
        if grid < 1 or size // grid < 4 * kernel:
            raise ConfigError(
                f"grid {grid} leaves tiles of {size // max(grid, 1)} px: too small for {kernel}x{kernel} kernels"
            )
        self.save_hyperparameters()
        self.input_spec = InputSpec(size=size, margin=margin, frames=1)
        self.identity = nn.Identity()  # no convolutional stage; the hook target of the interface
        self.classifier = make_classifier(classifier, neighbours)
        self.register_buffer("train_features", torch.zeros(0), persistent=False)
        self.register_buffer("train_labels", torch.zeros(0, dtype=torch.long), persistent=False)

    # ------------------------------------------------------------------ fingerprints and fitting
    def fingerprints(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames [N, 3, S, S]`` RGB in [0, 1] -> fingerprints ``[N, grid^2 * 3 (N_k^2 - 1)]`` (tiles row-major)."""
        from detection.traces import fingerprints

        g = self.hparams.grid
        n, c, h, w = frames.shape
        th, tw = h // g, w // g
        tiles = frames[..., : th * g, : tw * g].reshape(n, c, g, th, g, tw).permute(0, 2, 4, 1, 3, 5)
        prints = fingerprints(tiles.reshape(n * g * g, c, th, tw).float() * 255, self.hparams.kernel,
                              iterations=self.hparams.iterations)  # fmt: skip
        return prints.view(n, -1)

    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """``video [B, T, 3, H, W]`` RGB in [0, 1] -> one fingerprint per frame ``[B*T, D]``."""
        with torch.no_grad():
            return self.fingerprints(self.prepare(video))

    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> ConvTraceDetector:
        """Fit the classifier on fingerprints ``[N, D]`` and labels ``[N]`` (1 = fake), and keep them for saving."""
        y = labels.long().cpu()
        if len(set(y.tolist())) < 2:
            raise ConfigError("fitting a fingerprint classifier needs real and fake examples")
        self.classifier.fit(features.double().cpu().numpy(), y.numpy())
        self.train_features, self.train_labels = features.float().cpu(), y
        return self

    def p_fake_frames(self, features: torch.Tensor) -> torch.Tensor:
        """p(fake) ``[N]`` of fingerprints ``[N, D]``."""
        if not len(self.train_labels):
            raise ConfigError("this fingerprint detector has not been fitted (forgelab fingerprint fits one)")
        proba = self.classifier.predict_proba(features.double().cpu().numpy())
        fake = list(self.classifier.classes_).index(1)
        return torch.from_numpy(np.ascontiguousarray(proba[:, fake])).float()

    # ------------------------------------------------------------------ the detector interface
    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        return self.frame_features(video)[:, :, None, None]  # [B*T, D, 1, 1]

    def forward_head(self, features: torch.Tensor, b: int, t: int) -> torch.Tensor:
        p = self.p_fake_frames(features.flatten(1)).view(b, t).mean(1)
        return logits_from_p_fake(p).to(features.device)

    def feature_layer(self) -> nn.Module:
        return self.identity

    def explain(self, clip: torch.Tensor) -> dict[str, np.ndarray]:
        raise ConfigError("the convolutional-trace detector has no spatial map to draw (--cam): its evidence is "
                          "one kernel per colour channel for the whole crop")  # fmt: skip

    def describe(self) -> dict[str, str]:
        hp = self.hparams
        tiles = f", {hp.grid}x{hp.grid} tiles" if hp.grid > 1 else ""
        name = f"Convolutional traces (EM {hp.kernel}x{hp.kernel} kernels{tiles}, {hp.classifier.upper()})"
        return {"name": name, "weights": f"fitted with forgelab on {len(self.train_labels)} fingerprints",
                "licence": "yours"}  # fmt: skip

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the fingerprint file (configuration, input spec, training fingerprints and labels) atomically."""
        from common.outputs import atomic_path

        data = {"kind": FILE_KIND, "config": self.config(), "input_spec": self.input_spec.to_dict(),
                "features": self.train_features, "labels": self.train_labels, **(extra or {})}  # fmt: skip
        with atomic_path(Path(path)) as tmp:
            torch.save(data, tmp)
        return Path(path)


def is_fingerprint_file(data: dict[str, Any]) -> bool:
    """Whether a checkpoint dict read with ``weights_only`` is a fingerprint file."""
    return data.get("kind") == FILE_KIND


def load_fingerprint(path: str | Path, data: dict[str, Any] | None = None) -> ConvTraceDetector:
    """A fitted :class:`ConvTraceDetector` from its file (the classifier fitted again from the stored fingerprints)."""
    from common.weights import read_checkpoint

    data = read_checkpoint(path) if data is None else data
    if not is_fingerprint_file(data):
        raise CheckpointError(path, "not a forgelab fingerprint file")
    config = data.get("config") or {}
    try:
        detector = ConvTraceDetector(**dict(config.get("init_args") or {}))
        detector.fit(data["features"], data["labels"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(path, f"a broken fingerprint file ({str(exc).splitlines()[0][:160]})") from None
    detector.input_spec = InputSpec.from_dict(data.get("input_spec") or {})
    return detector
