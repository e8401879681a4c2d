"""A video's face track at a glance: a contact sheet of the crops and a JSON summary (``forgelab faces``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from common.faces import FaceExtractor, FaceTrack, box_jitter
from common.video import VideoReader, sample_indices


def contact_sheet(track: FaceTrack, columns: int = 12, tile: int = 96) -> Image.Image:
    """A grid of the track's crops, each labelled with its frame number; filled frames framed in red."""
    assert track.crops is not None
    n = len(track.crops)
    rows = (n + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, rows * (tile + 14)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, crop in enumerate(track.crops):
        x, y = (i % columns) * tile, (i // columns) * (tile + 14)
        sheet.paste(Image.fromarray(np.asarray(crop)).resize((tile, tile), Image.BILINEAR), (x, y))
        if not track.detected[i]:
            draw.rectangle([x, y, x + tile - 1, y + tile - 1], outline=(230, 40, 40), width=3)
        draw.text((x + 3, y + tile), f"#{int(track.frame_indices[i])}", fill=(220, 220, 220))
    return sheet


def extract_faces_report(
    video: Path, out_dir: Path, frames: str = "all", crop_size: int = 112, device: str = "auto"
) -> dict[str, Any]:
    """Run face extraction on one video and write ``<stem>_faces.png`` and ``<stem>_faces.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    extractor = FaceExtractor(crop_size=crop_size, device=device)
    start = time.perf_counter()
    with VideoReader(video) as reader:
        indices = sample_indices(reader.info.num_frames, frames)
        track = extractor.extract(reader, indices)
        info = reader.info
    seconds = time.perf_counter() - start
    sheet_path = out_dir / f"{video.stem}_faces.png"
    contact_sheet(track).save(sheet_path)
    raw = track.raw_boxes[track.detected]
    summary = {
        "video": str(video),
        "fps": round(info.fps, 3),
        "num_frames": info.num_frames,
        "size": [info.width, info.height],
        "has_audio": info.has_audio,
        "frames_processed": len(indices),
        "frames_with_face": int(track.detected.sum()),
        "face_rate": round(float(track.detected.mean()), 4),
        "frames_without_face": track.frame_indices[~track.detected].tolist(),
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
