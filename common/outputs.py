"""Output paths checked before any work starts, and files that appear only when complete.

Every command that writes calls :func:`output_file` or :func:`output_dir` on its ``--out`` first, so a
path that cannot work (its parent is a file, it is an existing directory where a file is expected, the
folder is read-only, a pseudo file system such as ``/proc``) fails in a second, not after minutes of
work. Missing parent folders are created. Writes then go to a temporary file beside the target that is
renamed into place when complete (:func:`atomic_path`), so a failed write (a full disk included) leaves
nothing behind, and the final file gets ordinary permissions (``0666`` less the umask).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.errors import OutputError

PSEUDO_FILE_SYSTEMS = ("/proc", "/sys", "/dev")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _check_dir_usable(folder: Path, target: Path) -> None:
    """Create ``folder`` if needed and check that files can be created in it."""
    resolved = folder.resolve()
    if any(resolved == Path(p) or Path(p) in resolved.parents for p in PSEUDO_FILE_SYSTEMS):
        raise OutputError(target, f"{folder} is a system pseudo file system, not a place for outputs")
    for parent in (resolved, *resolved.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputError(target, f"{parent} is a file, not a folder")
        if parent.exists():
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(target, f"cannot create folder {folder} ({_reason(exc)})") from None
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(target, f"folder {folder} is not writable ({_reason(exc)})") from None


def output_file(path: str | Path, suffixes: tuple[str, ...] = ()) -> Path:
    """Check an output *file* path before the work: not a directory, parent folder usable (created when
    missing), suffix among ``suffixes`` when given. Returns the path."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(p, "is an existing folder; give a file name")
    if suffixes and p.suffix.lower() not in suffixes:
        raise OutputError(p, f"expected a {' or '.join(suffixes)} file name")
    _check_dir_usable(p.parent if str(p.parent) else Path("."), p)
    return p


def output_dir(path: str | Path) -> Path:
    """Check an output *folder* before the work: not an existing file, creatable and writable. Returns it."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(p, "is an existing file; give a folder")
    _check_dir_usable(p, p)
    return p


def finish_permissions(path: Path) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the permissions an ordinary new file gets."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path`` (ordinary permissions),
    on any error it is removed and the error re-raised (an ``OSError`` as :class:`OutputError`)."""
    out = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".partial{out.suffix}", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        finish_permissions(tmp)
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(out, _reason(exc)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_all(folder: str | Path, files: dict[str, str | bytes | Any]) -> dict[str, Path]:
    """Write a set of files into ``folder``, all or nothing: each under a temporary name first, the set renamed
    into place only when every one was written (a full disk leaves no report without its pictures, and no
    temporary file). Values: text, bytes, or a uint8 ``[H, W, 3]`` image array (written as PNG)."""
    import numpy as np

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, Path]] = []
    try:
        for name, value in files.items():
            written.append((out / f".{name}.partial", out / name))
            tmp = written[-1][0]
            if isinstance(value, str):
                tmp.write_text(value)
            elif isinstance(value, bytes):
                tmp.write_bytes(value)
            else:
                from PIL import Image

                Image.fromarray(np.asarray(value, dtype=np.uint8)).save(tmp, format="PNG")
            finish_permissions(tmp)
    except OSError as exc:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise OutputError(out, _reason(exc)) from None
    for tmp, final in written:
        os.replace(tmp, final)
    return {name: out / name for name in files}
