"""Checkpoint formats of motion co-segmentation, through explicit key maps.

* native (the original ``train.py``): ``{"segmentation_module": sd, "reconstruction_module": sd, ...}``
* first-order-model (FOMM): ``{"kp_detector": sd, "generator": sd, ...}`` with ``kp.* -> shift.*``,
  ``jacobian.* -> affine.*``, ``semantic_seg.* -> segmentation.*``; ``dense_motion_network.*`` ignored.
  A FOMM file without ``semantic_seg`` (a plain keypoint model) leaves the segmentation head at its
  initialisation, as the original did (used to warm-start training).
* ours: a Lightning checkpoint of :class:`generation.system.SegmenterSystem`.

Files are read with ``torch.load(weights_only=True)``; every problem is a :class:`CheckpointError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from common.errors import CheckpointError
from common.weights import fit_state_dict, read_checkpoint
from generation.models import ReconstructionModule, SegmentationModule

FOMM_TO_NATIVE = {"kp.": "shift.", "jacobian.": "affine.", "semantic_seg.": "segmentation."}


def build_modules(model_params: Mapping[str, Any]) -> tuple[SegmentationModule, ReconstructionModule]:
    """Both networks from the original YAML layout (``common_params``, ``*_module_params``)."""
    common = dict(model_params["common_params"])
    seg = SegmentationModule(**common, **model_params["segmentation_module_params"])
    rec_common = {k: v for k, v in common.items() if k != "estimate_affine_part"}
    rec = ReconstructionModule(**rec_common, **model_params["reconstruction_module_params"])
    return seg, rec


def split_formats(data: Mapping[str, Any], where: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str]:
    """The (segmentation, reconstruction) state dicts of a native or FOMM checkpoint, and the format name."""
    if "segmentation_module" in data and "reconstruction_module" in data:
        return dict(data["segmentation_module"]), dict(data["reconstruction_module"]), "native"
    if "kp_detector" in data and "generator" in data:
        seg = {}
        for key, value in data["kp_detector"].items():
            for old, new in FOMM_TO_NATIVE.items():
                if key.startswith(old):
                    key = new + key[len(old) :]
                    break
            seg[key] = value
        rec = {k: v for k, v in data["generator"].items() if not k.startswith("dense_motion_network.")}
        return seg, rec, "fomm"
    state = data.get("state_dict")
    if isinstance(state, Mapping) and any(k.startswith("segmentation_module.") for k in state):
        seg = {k[len("segmentation_module.") :]: v for k, v in state.items() if k.startswith("segmentation_module.")}
        rec = {
            k[len("reconstruction_module.") :]: v for k, v in state.items() if k.startswith("reconstruction_module.")
        }
        return seg, rec, "lightning"
    raise CheckpointError(where, f"not a co-segmentation checkpoint (top-level keys: {sorted(data)[:6]})")


def segment_count(seg_state: Mapping[str, torch.Tensor]) -> int | None:
    """K read from the state dict (the shift head has K output channels)."""
    w = seg_state.get("shift.weight")
    return None if w is None else int(w.shape[0])


def load_state(
    seg: SegmentationModule,
    rec: ReconstructionModule,
    seg_state: Mapping[str, torch.Tensor],
    rec_state: Mapping[str, torch.Tensor],
    where: str,
    allow_missing_segmentation: bool = False,
) -> None:
    """Load state dicts into the modules, checking K and shapes with clear messages.

    ``allow_missing_segmentation`` accepts a keypoint-only FOMM file (segmentation head stays as is).
    """
    have = segment_count(seg_state)
    if have is not None and have != seg.num_segments:
        raise CheckpointError(where, f"checkpoint has {have} segments, the configuration asks for {seg.num_segments}")
    for module, state, name in ((seg, seg_state, "segmentation_module"), (rec, rec_state, "reconstruction_module")):
        optional = allow_missing_segmentation and name == "segmentation_module"
        fit_state_dict(module, state, where, f"the {name} architecture",
                       allow_missing=(lambda k: k.startswith("segmentation.")) if optional else None)  # fmt: skip


def load_published(
    path: str | Path, seg: SegmentationModule, rec: ReconstructionModule, allow_missing_segmentation: bool = False
) -> str:
    """Load a native, FOMM or Lightning checkpoint file into the modules; returns the format name."""
    data = read_checkpoint(path)
    seg_state, rec_state, fmt = split_formats(data, str(path))
    load_state(seg, rec, seg_state, rec_state, str(path), allow_missing_segmentation)
    return fmt


def export_native(seg: SegmentationModule, rec: ReconstructionModule, path: str | Path, epoch: int = 0) -> Path:
    """Write the original native format (loadable by the original code and by :func:`load_published`)."""
    out = Path(path)
    tmp = out.with_name(f".{out.name}.partial")
    torch.save(
        {"segmentation_module": seg.state_dict(), "reconstruction_module": rec.state_dict(), "epoch": epoch}, tmp
    )
    tmp.replace(out)
    return out
