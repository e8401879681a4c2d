"""A video's face track at a glance: a contact sheet of the crops and a JSON summary (``forgelab faces``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from common.faces import FaceExtractor, FaceTrack, box_jitter, crop_square
from common.video import VideoReader, sample_indices


def sheet_rows(num_frames: int, max_tiles: int) -> np.ndarray:
    """Which of ``num_frames`` tracked frames the sheet shows: all, or ``max_tiles`` evenly spaced."""
    if num_frames <= max_tiles:
        return np.arange(num_frames)
    return np.unique(np.linspace(0, num_frames - 1, max_tiles).round().astype(int))


def sheet_crops(reader: VideoReader, track: FaceTrack, rows: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[len(rows), size, size, 3]``: the face crops of the track's ``rows``, decoded one frame at a time."""
    frames = track.frame_indices[rows].tolist()
    return np.stack([crop_square(frame, track.crop_boxes[r], size) for r, (_, frame) in
                     zip(rows, reader.iter_frames(frames))])  # fmt: skip


def contact_sheet(crops: np.ndarray, frame_numbers: np.ndarray, missing: np.ndarray, columns: int = 12,
                  tile: int = 96) -> Image.Image:  # fmt: skip
    """A grid of face crops ``[n, S, S, 3]``, each labelled with its frame number; frames where the detector
    found no face (``missing [n]``, their box filled from neighbours) framed in red."""
    n = len(crops)
    rows = (n + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, rows * (tile + 14)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, crop in enumerate(crops):
        x, y = (i % columns) * tile, (i // columns) * (tile + 14)
        sheet.paste(Image.fromarray(np.asarray(crop)).resize((tile, tile), Image.BILINEAR), (x, y))
        if missing[i]:
            draw.rectangle([x, y, x + tile - 1, y + tile - 1], outline=(230, 40, 40), width=3)
        draw.text((x + 3, y + tile), f"#{int(frame_numbers[i])}", fill=(220, 220, 220))
    return sheet


def extract_faces_report(video: Path, out_dir: Path, frames: str = "all", crop_size: int = 112, device: str = "auto",
                         detect_every: int = 1, max_tiles: int = 96) -> dict[str, Any]:  # fmt: skip
    """Track the face of one video and write ``<stem>_faces.png`` (a contact sheet of at most ``max_tiles``
    evenly spaced crops) and ``<stem>_faces.json``. Memory does not grow with the video's length: the track
    keeps boxes only, and the sheet's crops are cut in a second pass over its frames.

    ``detect_every``: the face detector on every k-th frame, the others interpolated (:mod:`common.tracking`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    extractor = FaceExtractor(crop_size=crop_size, device=device)
    start = time.perf_counter()
    with VideoReader(video) as reader:
        indices = sample_indices(reader.info.num_frames, frames)
        track = extractor.extract(reader, indices, crops=False, detect_every=detect_every)
        rows = sheet_rows(len(track.frame_indices), max_tiles)
        crops = sheet_crops(reader, track, rows, crop_size)
        info = reader.info
    seconds = time.perf_counter() - start
    sheet_path = out_dir / f"{video.stem}_faces.png"
    contact_sheet(crops, track.frame_indices[rows], track.missing()[rows]).save(sheet_path)
    raw = track.raw_boxes[track.detected]
    interpolated = 0 if track.interpolated is None else int(track.interpolated.sum())
    summary = {
        "video": str(video),
        "fps": round(info.fps, 3),
        "num_frames": info.num_frames,
        "size": [info.width, info.height],
        "has_audio": info.has_audio,
        "frames_processed": len(indices),
        "frames_with_face": int(track.detected.sum()),
        "face_rate": round(float(track.detected.sum() / max(1, len(track.detected) - interpolated)), 4),
        "frames_without_face": track.frame_indices[track.missing()].tolist(),
        "frames_interpolated": interpolated,
        "sheet_tiles": len(rows),
        "mean_score": round(float(track.scores[track.detected].mean()), 4),
        "mean_face_size_px": round(float(np.mean(raw[:, 2:] - raw[:, :2])), 1),
        "box_jitter_raw_px": round(box_jitter(raw), 3),
        "box_jitter_smoothed_px": round(box_jitter(track.boxes), 3),
        "crop_size": crop_size,
        "margin": extractor.margin,
        "device": str(extractor.device),
        "seconds": round(seconds, 2),
        "frames_per_second": round(len(indices) / seconds, 1),
        "contact_sheet": str(sheet_path),
    }
    (out_dir / f"{video.stem}_faces.json").write_text(json.dumps(summary, indent=2))
    return summary
