"""Media bundled with the project (``assets/``)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SAMPLE_VIDEO = ASSETS / "carphone_pristine.mp4"  # a real talking face, 176x144, 120 frames
