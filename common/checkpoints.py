"""Reading checkpoint files safely: ``weights_only=True`` and one clear error for every bad file."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from common.errors import CheckpointError


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` to CPU; missing, HTML, truncated or non-dict files raise
    :class:`CheckpointError` naming the file (never an ``UnpicklingError``)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "file does not exist")
    with p.open("rb") as fh:
        head = fh.read(64).lstrip().lower()
    if head.startswith((b"<!doctype", b"<html")):
        raise CheckpointError(p, "this is an HTML page, not a checkpoint (a failed download?)")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(p, f"not a readable PyTorch checkpoint ({str(exc).splitlines()[0][:160]})") from None
    if not isinstance(data, dict):
        raise CheckpointError(p, f"expected a dict, found {type(data).__name__}")
    return data


def newest_best_checkpoint(run_root: str | Path) -> Path | None:
    """The best checkpoint (any ``.ckpt`` but ``last.ckpt``) of the newest ``version_*`` run under
    ``run_root``, falling back to its ``last.ckpt``; ``None`` when there is no run."""
    versions = sorted(Path(run_root).glob("version_*/checkpoints"), key=lambda p: p.stat().st_mtime)
    for folder in reversed(versions):
        ckpts = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        best = [p for p in ckpts if p.name != "last.ckpt"]
        if best or ckpts:
            return (best or ckpts)[-1]
    return None
