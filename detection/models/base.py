"""The one detector interface every detector implements (ours, published adapters, MesoNet, the seeds').

Like timm's ``forward_features`` / ``forward_head``:

* ``forward(video [B, T, 3, H, W] float RGB in [0, 1]) -> logits [B, 2]`` (index 1 = fake);
* ``forward_features(video) -> [B*T, C, h, w]``: per-frame feature maps (the CAM / attention hook reads
  :meth:`Detector.feature_layer`, the module that outputs them);
* ``forward_head(features, b, t) -> logits [B, 2]``;
* ``input_spec``: what the detector expects from the face crops (:class:`InputSpec`). Consumers (detect,
  evaluate, the benchmark, the web page) cut crops and sample clips from it; they never probe attributes
  or branch on a detector's name. Resizing, colour order and normalisation to the spec happen inside
  :meth:`Detector.prepare`, so callers always pass RGB in [0, 1].
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SPEC_KEY = "input_spec"  # where a checkpoint stores the input spec its fit recorded
FIT_SECONDS_KEY = "fit_seconds"  # where a checkpoint or fingerprint file stores how long its fit has run


@dataclass(frozen=True)
class InputSpec:
    """What a detector expects.

    Attributes:
        size: side of the square face crop in pixels.
        margin: crop side / face-box side (1.3 is the FaceForensics++ protocol; 1.0 a tight box).
        square: square crops around the face box (else the box itself, stretched to ``size``).
        frames: frames per clip (T).
        stride: step between the frames of a clip, in source frames.
        mean: per-channel mean subtracted inside :meth:`Detector.prepare` (in the spec's colour order).
        std: per-channel standard deviation divided inside :meth:`Detector.prepare`.
        colour: channel order the network was trained on (``RGB`` or ``BGR``).
        resize: interpolation used to cut crops at ``size`` and to resize clips of another size
            (``bilinear``, ``bicubic`` or ``nearest``).
        aggregation: clip -> video score rule (``mean``, ``max``, ``confident``).
    """

    size: int = 112
    margin: float = 1.3
    square: bool = True
    frames: int = 20
    stride: int = 1
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    colour: Literal["RGB", "BGR"] = "RGB"
    resize: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    aggregation: Literal["mean", "max", "confident"] = "mean"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> InputSpec:
        """A copy with some fields changed."""
        return replace(self, **changes)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Hyperparameters(dict):
    """A detector's constructor arguments, also readable as attributes (``self.hparams.trunk``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Detector(nn.Module):
    """Base class of every detector.

    Subclasses call ``self.save_hyperparameters()`` in ``__init__`` (their constructor arguments, so
    :meth:`config` can rebuild them), set ``self.input_spec`` and implement :meth:`forward_features`,
    :meth:`forward_head` and :meth:`feature_layer`. ``forward`` = ``forward_head(forward_features(video))``.
    Inference does not import Lightning (it costs ~100 MB of memory in ``forgelab detect``).
    """

    input_spec: InputSpec
    fixed_size: bool = False  # True when the architecture only accepts ``input_spec.size`` (e.g. a flatten)
    explains_itself: bool = False  # True when :meth:`explain` reads the detector's own maps (no gradients)

    def __init__(self) -> None:
        super().__init__()
        self.hparams = Hyperparameters()

    def save_hyperparameters(self) -> None:
        """Record the arguments of the constructor that calls this as :attr:`hparams`."""
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        if caller is None:
            raise RuntimeError("save_hyperparameters() must be called from a constructor")
        code = caller.f_code
        names = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]  # without self
        self.hparams = Hyperparameters({name: caller.f_locals[name] for name in names})

    def prepare(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` RGB [0, 1] -> ``[B*T, 3, S, S]``: resized to the spec, colour-ordered, normalised."""
        spec = self.input_spec
        x = video.flatten(0, 1)
        if x.shape[-1] != spec.size or x.shape[-2] != spec.size:
            if spec.resize == "nearest":
                x = F.interpolate(x, size=(spec.size, spec.size), mode="nearest")
            else:
                x = F.interpolate(x, size=(spec.size, spec.size), mode=spec.resize, antialias=True, align_corners=False)
                x = x.clamp(0, 1)
        if spec.colour == "BGR":
            x = x.flip(1)
        if spec.mean != (0.0, 0.0, 0.0) or spec.std != (1.0, 1.0, 1.0):
            mean = torch.tensor(spec.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(spec.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        if self.is_channels_last():
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """``video [B, T, 3, H, W]`` RGB [0, 1] -> per-frame feature maps ``[B*T, C, h, w]``."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """Feature maps ``[B*T, C, h, w]`` of ``b`` clips of ``t`` frames -> logits ``[B, 2]`` (index 1 = fake)."""
        raise NotImplementedError

    def feature_layer(self) -> nn.Module:
        """The last convolutional stage, whose per-frame activations ``[B*T, C, h, w]`` CAM and attention
        maps read (a hook target; :meth:`forward_features` returns them or a pooled version of them)."""
        raise NotImplementedError

    def scored_frames(self, frames: int) -> int:
        """How many frames of a clip of ``frames`` frames the detector scores (all of them unless it reads a
        window of frames per scored frame)."""
        return frames

    def explain(self, clip: torch.Tensor) -> dict[str, np.ndarray]:
        """Where the detector looked, per scored frame of ``clip [1, T, 3, S, S]`` (RGB [0, 1]): named heatmaps
        ``[T', S, S]`` in [0, 1], the first the default of ``detect --cam``. Grad-CAM toward "fake" on
        :meth:`feature_layer` here; a detector with its own explanation (attention maps) overrides this."""
        from detection.cam import grad_cam

        return {"grad-cam": grad_cam(self, clip)}

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``video [B, T, 3, H, W]`` RGB [0, 1] -> logits ``[B, 2]`` (index 1 = fake)."""
        b, t = video.shape[:2]
        return self.forward_head(self.forward_features(video), b, t)

    def to_channels_last(self) -> Detector:
        """Convolutions in channels-last memory format (same numbers; faster on GPU and usually on CPU)."""
        self.feature_layer().to(memory_format=torch.channels_last)
        return self

    def is_channels_last(self) -> bool:
        p = next(self.feature_layer().parameters(), None)
        return p is not None and p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)

    def init_pretrained(self) -> None:
        """Load the weights that seed a fresh fit (e.g. ImageNet) from local files; no-op by default."""

    def describe(self) -> dict[str, Any]:
        """Source and licence of the weights, for reports and the web page."""
        return {"name": type(self).__name__}

    def config(self) -> dict[str, Any]:
        """``{"class_path": ..., "init_args": ...}``: what rebuilds this detector (see :func:`build_detector`)."""
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(self.hparams)}


def detector_classes() -> dict[str, type[Detector]]:
    """Every imported :class:`Detector` subclass by class path (``detection.models`` imports the built-in ones)."""
    import detection.models  # noqa: F401  (registers the built-in detectors)

    found: dict[str, type[Detector]] = {}
    todo = list(Detector.__subclasses__())
    while todo:
        cls = todo.pop()
        found[f"{cls.__module__}.{cls.__qualname__}"] = cls
        todo.extend(cls.__subclasses__())
    return found


def build_detector(config: dict[str, Any]) -> Detector:
    """A detector from :meth:`Detector.config` output. Only imported :class:`Detector` subclasses are built, so a
    checkpoint can never name an arbitrary class to instantiate."""
    from common.errors import ConfigError

    path = config.get("class_path") if isinstance(config, dict) else None
    classes = detector_classes()
    if path not in classes:
        raise ConfigError(f"unknown detector class {path!r}; known: {', '.join(sorted(classes))}")
    return classes[path](**dict(config.get("init_args") or {}))


def p_fake(logits: torch.Tensor) -> torch.Tensor:
    """p(fake) ``[B]`` from logits ``[B, 2]``."""
    return logits.float().softmax(1)[:, 1]


def logits_from_p_fake(p: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Two-class logits ``[B, 2]`` whose softmax gives ``p [B]`` as p(fake): ``[0, logit(p)]``."""
    p = p.clamp(eps, 1 - eps)
    return torch.stack([torch.zeros_like(p), torch.log(p) - torch.log1p(-p)], dim=1)
