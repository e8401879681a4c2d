"""The one place weight files are read: our checkpoints, published checkpoints, pretrained (ImageNet) files
and Keras HDF5 weights. Nothing is ever downloaded.

* :func:`read_checkpoint`: ``torch.load(weights_only=True)`` to CPU, with one :class:`CheckpointError` for a
  missing, empty, HTML, truncated or non-dict file.
* :func:`read_h5`: a Keras-2 weight file through h5py: ``{layer group: {variable: array}}``.
* :func:`find` / :func:`available`: the files declared in ``pretrained/manifest.yaml``, looked up in
  ``$FORGELAB_WEIGHTS`` (when set), then ``pretrained/``, then the torch hub cache, sha256-checked.
* :func:`load_pretrained_state`: a manifest file read and filtered into a state dict.
* :func:`fit_state_dict`: load a state dict into a module with one clear error naming the first missing,
  unexpected or mis-shaped key.

Format-specific key maps (timm's ``checkpoint_filter_fn`` idea) live beside their models and call these.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from common.errors import CheckpointError


# ---------------------------------------------------------------------- reading files
def _check_file(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(path, "file does not exist" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty (0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(64).lstrip().lower()
    if head.startswith((b"<!doctype", b"<html")):
        raise CheckpointError(path, "this is an HTML page, not a checkpoint (a failed download?)")


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """``torch.load(path, map_location="cpu", weights_only=True)``; every bad file is a :class:`CheckpointError`
    naming the file (never an ``UnpicklingError``; a pickle that would execute code is refused).

    ``mmap``: map the tensors from the file instead of reading them, so what is never used (a training
    checkpoint's optimizer state) costs no memory."""
    p = Path(path)
    _check_file(p)
    try:
        data = torch.load(p, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(p))
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(p, f"not a readable PyTorch checkpoint ({first})") from None
    if not isinstance(data, dict):
        raise CheckpointError(p, f"expected a dict, found {type(data).__name__}")
    return data


def read_h5(path: str | Path, expected: str = "a Keras HDF5 weight file") -> dict[str, dict[str, np.ndarray]]:
    """A legacy Keras-2 weight file: ``{layer group: {variable name: float32 array}}`` read with h5py.

    Variables are stored at ``<layer>/<layer>/<var>:0``; names are returned without the ``:0`` suffix.
    """
    import h5py

    p = Path(path)
    _check_file(p)
    try:
        with h5py.File(p, "r") as f:
            layers: dict[str, dict[str, np.ndarray]] = {}
            for name, group in f.items():
                if not isinstance(group, h5py.Group):
                    continue
                found: dict[str, np.ndarray] = {}

                def keep(key: str, obj: object, out: dict[str, np.ndarray] = found) -> None:
                    if isinstance(obj, h5py.Dataset):
                        out[key.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj)

                group.visititems(keep)
                if found:
                    layers[name] = found
    except OSError as exc:
        raise CheckpointError(p, f"not an HDF5 file ({str(exc).splitlines()[0][:120]}); expected {expected}") from None
    if not layers:
        raise CheckpointError(p, f"holds no weight arrays; expected {expected}")
    return layers


def numbered_groups(layers: Mapping[str, Any], prefix: str) -> list[str]:
    """Keras auto-named groups ``<prefix>_<n>`` sorted by ``n`` (the order the model created them)."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)$")
    found = [(int(m.group(1)), name) for name in layers if (m := pattern.match(name))]
    return [name for _, name in sorted(found)]


# ---------------------------------------------------------------------- fitting state dicts
def fit_state_dict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    where: str | Path,
    what: str = "the architecture",
    allow_missing: Callable[[str], bool] | None = None,
) -> None:
    """``module.load_state_dict(state)`` with one :class:`CheckpointError` for a mis-shaped, missing or
    unexpected key (``allow_missing(key)`` exempts keys that may stay at their initialisation)."""
    own = module.state_dict()
    bad = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise CheckpointError(where, f"{k} has shape {tuple(state[k].shape)}, expected {tuple(own[k].shape)} ({what})")
    missing = [k for k in own if k not in state and not (allow_missing and allow_missing(k))]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(where, f"keys do not match {what}: {detail}")
    module.load_state_dict(dict(state), strict=False)


# ---------------------------------------------------------------------- the pretrained/ manifest
def manifest() -> dict[str, dict[str, Any]]:
    """The ``weights`` table of ``pretrained/manifest.yaml``."""
    text = resources.files("pretrained").joinpath("manifest.yaml").read_text()
    return yaml.safe_load(text)["weights"]


def pretrained_dir() -> Path:
    """The ``pretrained/`` folder of this checkout / installation."""
    return Path(str(resources.files("pretrained")))


def search_dirs() -> list[Path]:
    """Folders searched for weight files: ``$FORGELAB_WEIGHTS`` (when set), ``pretrained/``, the torch hub cache."""
    dirs = [pretrained_dir()]
    if os.environ.get("FORGELAB_WEIGHTS"):
        dirs.insert(0, Path(os.environ["FORGELAB_WEIGHTS"]))
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    dirs.append(torch_home / "hub" / "checkpoints")
    return dirs


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find(name: str, verify: bool = True) -> Path:
    """Path of the manifest's weight file ``name``.

    Raises:
        CheckpointError: unknown name, file missing (the message says where to put it), or a file whose
            sha256 does not match the manifest.
    """
    table = manifest()
    if name not in table:
        raise CheckpointError(name, f"unknown weights; known: {', '.join(sorted(table))}")
    entry = table[name]
    for d in search_dirs():
        path = d / entry["file"]
        if path.is_file():
            prefix = entry.get("sha256_prefix")
            if verify and prefix and not sha256(path).startswith(prefix):
                raise CheckpointError(path, f"sha256 does not start with {prefix} ({entry['source']})")
            return path
    where = " or ".join(str(d) for d in search_dirs())
    raise CheckpointError(
        entry["file"], f"{entry['source']} weights are not on this machine; put {entry['file']} in {where}"
    )


def available(name: str) -> Path | None:
    """The manifest's weight file ``name`` when it is on this machine (and verifies), else ``None``."""
    try:
        return find(name)
    except CheckpointError:
        return None


def weight_file(name_or_path: str | Path) -> Path:
    """A manifest name (looked up with :func:`find`) or a path to a weight file."""
    if isinstance(name_or_path, str) and name_or_path in manifest():
        return find(name_or_path)
    return Path(name_or_path)


def load_pretrained_state(name: str, prefix: str = "", rename: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The state dict of manifest file ``name``: keys under ``prefix`` (stripped), first components renamed."""
    path = find(name)
    state = read_checkpoint(path)
    out: dict[str, Any] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix) :]
        if rename is not None:
            head, _, rest = key.partition(".")
            if head not in rename:
                continue
            key = f"{rename[head]}.{rest}"
        out[key] = value
    return out


# ---------------------------------------------------------------------- our training runs
def newest_checkpoint(run_root: str | Path) -> Path | None:
    """The best checkpoint (any ``.ckpt`` but ``last.ckpt``) of the newest ``version_*`` run under ``run_root``,
    falling back to its ``last.ckpt``; ``None`` when there is no run."""
    versions = sorted(Path(run_root).glob("version_*/checkpoints"), key=lambda p: p.stat().st_mtime)
    for folder in reversed(versions):
        ckpts = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        best = [p for p in ckpts if p.name != "last.ckpt"]
        if best or ckpts:
            return (best or ckpts)[-1]
    return None
