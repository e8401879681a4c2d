"""Typed errors raised by forgelab for bad input.

Every error a user can cause (a corrupt video, a face-less clip, a malformed split file, a wrong
checkpoint) is one of these, with a one-line message that names the file and the reason. The CLI turns
them into that line on stderr and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class ForgelabError(Exception):
    """Base class: a problem with the user's input, reported as one clear line."""

    exit_code: int = 1


class PathError(ForgelabError):
    """A problem with one file: the message names the file (``what`` it is) and the reason."""

    verb = "cannot read"
    what = "file"

    def __init__(self, path: str | Path, reason: str, what: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.verb} {what or self.what} {self.path}: {reason}")


class VideoReadError(PathError):
    """A video file (or frame folder, or image) is missing, empty, truncated or not readable."""

    what = "video"


class VideoWriteError(PathError):
    """An output video (or image) could not be written."""

    verb = "cannot write"
    what = "video"


class OutputError(PathError):
    """An output path is unusable (missing parent that cannot be created, not writable, a directory where a
    file is expected or the reverse) or a write failed (full disk, encoder error)."""

    verb = "cannot write"
    what = "output"


class NoFaceError(ForgelabError):
    """No face was found in any frame of a video (or in an image)."""

    exit_code = 2

    def __init__(self, path: str | Path, detail: str = "") -> None:
        self.path = str(path)
        msg = f"no face found in {self.path}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


class DatasetError(ForgelabError):
    """A dataset root, manifest or split file does not have the expected layout or content."""

    def __init__(self, where: str | Path, reason: str) -> None:
        self.where = str(where)
        self.reason = reason
        super().__init__(f"dataset problem at {self.where}: {reason}")


class CheckpointError(PathError):
    """A checkpoint or weight file is missing, corrupt, or of the wrong architecture."""

    verb = "cannot use"
    what = "checkpoint"


class ConfigError(ForgelabError):
    """An option or configuration value is invalid."""
