"""Load any detector file: our checkpoints, published ResNeXt-LSTM files and MesoNet's Keras weights.

The kind is inferred from the file: ``.h5`` -> MesoNet (variant read from the file), a name like
``model_<acc>_acc_<frames>_frames_<tag>.pt`` -> the published ResNeXt-LSTM, anything else -> a
:class:`~detection.system.DetectionSystem` checkpoint. Every detector comes back behind the one
:class:`~detection.models.Detector` interface, its input spec saying how to feed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.errors import CheckpointError, ForgelabError
from common.faces import resolve_device
from common.weights import newest_checkpoint, read_checkpoint
from detection.models import Detector, InputSpec, PublishedResNeXtLSTM, build_detector
from detection.models.base import FIT_SECONDS_KEY, SPEC_KEY, p_fake
from detection.models.conv_traces import is_fingerprint_file, load_fingerprint
from detection.models.legacy import is_legacy_file
from detection.models.mesonet import load_mesonet

DEFAULT_RUNS = Path("outputs/runs/detector_sample")


@dataclass
class LoadedDetector:
    """A detector ready for inference.

    Attributes:
        module: the :class:`Detector` (eval mode, on ``device``).
        path: the file it came from.
        kind: ``forgelab`` (trained or fitted here), ``published-resnext-lstm`` or ``mesonet``.
        device: where it runs.
        train_seconds: how long its fit took, when the file recorded it (our checkpoints and fingerprint files).
    """

    module: Detector
    path: str
    kind: str
    device: torch.device
    train_seconds: float | None = None

    @property
    def spec(self) -> InputSpec:
        """What the detector expects (crop size and margin, frames, stride, aggregation)."""
        return self.module.input_spec

    @torch.inference_mode()
    def p_fake(self, clips: torch.Tensor, frames_per_batch: int = 32) -> np.ndarray:
        """p(fake) of each clip of ``clips [K, T, 3, S, S]`` (RGB [0, 1]), a few clips per forward pass (at most
        ``frames_per_batch`` frames, at least one clip) without autograd, so memory stays small for any spec."""
        step = max(1, frames_per_batch // max(1, clips.shape[1]))
        out = [p_fake(self.module(clips[i : i + step].to(self.device))).cpu() for i in range(0, len(clips), step)]
        return torch.cat(out).numpy()

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "checkpoint": self.path, **self.module.describe()}


def load_system_detector(path: str | Path) -> tuple[Detector, float | None]:
    """The detector of a :class:`~detection.system.DetectionSystem` checkpoint, with the input spec its fit
    recorded, or a fingerprint file's fitted detector (``forgelab fingerprint``). Only the detector is built (from
    its stored configuration, known classes only) and only its weights are read: the checkpoint is
    memory-mapped, so the optimizer state costs nothing. Returns the detector and its recorded fit time (seconds)."""
    data = read_checkpoint(path, mmap=True)  # one clear error for missing / empty / HTML / truncated files first
    seconds = data.get(FIT_SECONDS_KEY)
    seconds = float(seconds) if isinstance(seconds, (int, float)) else None
    if is_fingerprint_file(data):
        return load_fingerprint(path, data), seconds
    hp = data.get("hyper_parameters", {})
    if "state_dict" not in data or "detector" not in hp:
        raise CheckpointError(path, "not a DetectionSystem checkpoint, nor a published model_<acc>_acc_<n>_frames_*.pt "
                              "or MesoNet .h5 file")  # fmt: skip
    prefix = "detector."
    state = {k[len(prefix) :]: v for k, v in data["state_dict"].items() if k.startswith(prefix)}
    try:
        detector = build_detector(dict(hp["detector"]))
        detector.load_state_dict(state)
    except ForgelabError as exc:
        raise CheckpointError(path, str(exc)) from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(path, f"weights do not fit the detector ({str(exc).splitlines()[0][:160]})") from None
    spec = data.get(SPEC_KEY)
    detector.input_spec = (InputSpec.from_dict(spec) if spec else
                           detector.input_spec.replace(aggregation=hp.get("aggregation", "mean")))  # fmt: skip
    del data, state  # drop the file mapping
    return detector, seconds


def save_detector(detector: Detector, path: str | Path, extra: dict | None = None) -> Path:
    """Write ``detector`` as a checkpoint :func:`load_system_detector` reads (the layout of a
    :class:`~detection.system.DetectionSystem` checkpoint: weights under ``detector.``, its configuration, its input
    spec), plus ``extra`` entries, atomically. For detectors fitted outside Lightning (``forgelab transfer``)."""
    from common.outputs import atomic_path

    data = {"state_dict": {f"detector.{k}": v for k, v in detector.state_dict().items()},
            "hyper_parameters": {"detector": detector.config()}, SPEC_KEY: detector.input_spec.to_dict(),
            **(extra or {})}  # fmt: skip
    with atomic_path(Path(path)) as tmp:
        torch.save(data, tmp)
    return Path(path)


def load_detector(path: str | Path | None, device: str = "auto", runs: Path = DEFAULT_RUNS) -> LoadedDetector:
    """Load a detector file (kind inferred); ``None`` takes the newest run's best checkpoint under ``runs``."""
    if path is None:
        path = newest_checkpoint(runs)
        if path is None:
            raise CheckpointError("--checkpoint", "none given and no sample run found: run `make train-detector` "
                                  "or pass our .ckpt, a published model_*.pt or a MesoNet .h5")  # fmt: skip
    p = Path(path)
    seconds = None
    if p.suffix.lower() in (".h5", ".hdf5"):
        module: Detector = load_mesonet(p)
        kind = "mesonet"
    elif is_legacy_file(p):
        module, kind = PublishedResNeXtLSTM(str(p)), "published-resnext-lstm"
    else:
        module, seconds = load_system_detector(p)
        kind = "forgelab"
    dev = resolve_device(device)
    module = module.to_channels_last().to(dev).eval()  # same numbers, faster convolutions
    return LoadedDetector(module, str(p), kind, dev, seconds)
