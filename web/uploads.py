"""Multipart uploads read as they stream in, written under names the server chooses, refused the moment they
exceed the size limit (HTTP 413), before the rest of the body is read.

A client's file name never touches the file system: it is kept (shortened) only as text to show back, escaped.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 4096  # a plain (non-file) form field: a list of parts, a number
MAX_NAME_CHARS = 120  # a client file name kept for display


@dataclass
class Upload:
    """What a multipart body held.

    Attributes:
        files: ``{field name: path}`` of the file parts the caller asked for (server-chosen names).
        names: ``{field name: the client's file name, shortened}`` (display only).
        fields: ``{field name: text}`` of the plain fields.
        size: body bytes read.
    """

    files: dict[str, Path] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    size: int = 0


class _Parts:
    """python-multipart callbacks: file parts of the wanted fields streamed to ``folder``, plain fields kept."""

    def __init__(self, folder: Path, wanted: dict[str, str]) -> None:
        self.folder, self.wanted = folder, wanted
        self.upload = Upload()
        self._header_field, self._header_value = b"", b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._sink: Any = None
        self._text: bytearray | None = None

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end}  # fmt: skip

    def part_begin(self) -> None:
        self._headers, self._name, self._sink, self._text = {}, None, None, None

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._name = name
        if filename is not None and name in self.wanted and name not in self.upload.files:
            path = self.folder / f"{self.wanted[name]}-{secrets.token_hex(8)}"  # never the client's name
            self.upload.files[name] = path
            self.upload.names[name] = filename.decode("utf-8", "replace")[:MAX_NAME_CHARS]
            self._sink = path.open("wb")
        elif filename is None:
            self._text = bytearray()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(data[start:end])
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise HTTPException(413, f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def part_end(self) -> None:
        if self._sink is not None:
            self._sink.close()
        elif self._text is not None and self._name:
            self.upload.fields[self._name] = self._text.decode("utf-8", "replace")
        self._sink, self._text = None, None

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()


async def receive(request: Request, folder: Path, wanted: dict[str, str], max_bytes: int) -> Upload:
    """Stream a ``multipart/form-data`` body: the file parts named in ``wanted`` (``{field: file stem}``) are written
    to ``folder`` as they arrive; other file parts are read and dropped.

    Raises:
        HTTPException: 413 as soon as the body passes ``max_bytes`` (a declared ``Content-Length`` over it is refused
            before reading), 415 for a body that is not multipart, 400 for a malformed one or a missing file field.
            Nothing written stays behind on any error.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"upload of {int(declared)} bytes is over the {max_bytes}-byte limit")
    kind, options = parse_options_header(request.headers.get("content-type", "").encode("latin-1", "replace"))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HTTPException(415, "send the file as multipart/form-data")
    parts = _Parts(folder, wanted)
    parser = MultipartParser(boundary, parts.callbacks())
    try:
        async for chunk in request.stream():
            parts.upload.size += len(chunk)
            if parts.upload.size > max_bytes:
                raise HTTPException(413, f"upload is over the {max_bytes}-byte limit")
            parser.write(chunk)
        parser.finalize()
        missing = [name for name in wanted if name not in parts.upload.files]
        if missing:
            raise HTTPException(400, f"no file in the form field {missing[0]!r}")
    except HTTPException:
        discard(parts)
        raise
    except Exception as exc:  # a malformed body: python-multipart raises its own errors
        discard(parts)
        raise HTTPException(400, f"malformed multipart body ({type(exc).__name__})") from None
    return parts.upload


def discard(parts: _Parts) -> None:
    """Close and delete whatever a failed upload wrote."""
    parts.close()
    for path in parts.upload.files.values():
        path.unlink(missing_ok=True)
