"""Known weight files (``manifest.yaml``) and where to find them on disk. Nothing is downloaded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import yaml

from common.errors import CheckpointError

HERE = Path(__file__).resolve().parent


def manifest() -> dict[str, dict[str, Any]]:
    """The ``weights`` table of ``manifest.yaml``."""
    return yaml.safe_load((HERE / "manifest.yaml").read_text())["weights"]


def search_dirs() -> list[Path]:
    """Folders searched for weight files: this folder, then the torch hub caches."""
    dirs = [HERE]
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


def available(name: str) -> Path | None:
    """The weight file ``name`` when it is on this machine (and verifies), else ``None``."""
    try:
        return find(name)
    except CheckpointError:
        return None


def find(name: str, verify: bool = True) -> Path:
    """Path of the weight file ``name`` of the manifest.

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
                raise CheckpointError(path, f"sha256 does not start with {entry['sha256_prefix']} ({entry['source']})")
            return path
    where = " or ".join(str(d) for d in search_dirs())
    raise CheckpointError(
        entry["file"], f"{entry['source']} weights are not on this machine; put {entry['file']} in {where}"
    )
