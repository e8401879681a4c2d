"""Preprocessing benchmark (``forgelab bench preprocess``): decode and face-extraction speed, batched vs the
naive way, as ratios.

The naive way is what most public detectors do: MTCNN on one full-resolution frame at a time. Both
run in the same process on the same frames, so the ratio does not depend on the machine's load.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common.assets import SAMPLE_VIDEO
from common.faces import FaceExtractor
from common.video import VideoReader, write_video


def synthetic_720p(src: Path, out: Path, num_frames: int = 48, scale: float = 3.0) -> Path:
    """A 1280x720 video: the sample's frames enlarged ``scale`` times, drifting over a textured background."""
    with VideoReader(src) as r:
        frames = r.read(list(range(min(num_frames, r.info.num_frames))))
    h, w = (int(round(s * scale)) for s in frames.shape[1:3])
    rng = np.random.default_rng(0)
    bg = np.asarray(Image.fromarray(rng.integers(0, 255, (45, 80, 3), dtype=np.uint8)).resize((1280, 720)))

    def gen() -> Iterator[np.ndarray]:
        for i in range(num_frames):
            canvas = bg.copy()
            big = np.asarray(Image.fromarray(frames[i % len(frames)]).resize((w, h), Image.BILINEAR))
            x = 200 + int(120 * np.sin(i / 15))
            canvas[100 : 100 + h, x : x + w] = big
            yield canvas

    return write_video(out, gen(), 25.0)


def time_decode(path: Path) -> dict[str, float]:
    """Sequential decode of every frame: frames/s."""
    start = time.perf_counter()
    with VideoReader(path) as r:
        n = sum(len(i) for i, _ in r.iter_chunks(32))
    s = time.perf_counter() - start
    return {"frames": n, "seconds": round(s, 3), "frames_per_second": round(n / s, 1)}


def time_extract(path: Path, extractor: FaceExtractor, repeat: int = 1) -> tuple[dict[str, float], np.ndarray]:
    """Full face extraction (detect + track + crop): frames/s and the raw boxes (best of ``repeat``)."""
    best = float("inf")
    boxes = np.zeros((0, 4))
    for _ in range(repeat):
        start = time.perf_counter()
        with VideoReader(path) as r:
            track = extractor.extract(r)
            n = len(track.frame_indices)
        best = min(best, time.perf_counter() - start)
        boxes = track.raw_boxes
    return {"frames": n, "seconds": round(best, 3), "frames_per_second": round(n / best, 2)}, boxes


def bench_video(path: Path, device: str) -> dict[str, Any]:
    """Decode, batched extraction and naive extraction on one video, with the ratio and box agreement."""
    batched = FaceExtractor(crop_size=224, device=device)  # the defaults: batched, reduced resolution
    naive = FaceExtractor(crop_size=224, device=device, batch_size=1, detect_max_side=None, smoothing_sigma=0)
    decode = time_decode(path)
    fast, fast_boxes = time_extract(path, batched)
    slow, slow_boxes = time_extract(path, naive)
    both = ~np.isnan(fast_boxes[:, 0]) & ~np.isnan(slow_boxes[:, 0])
    diff = np.abs(fast_boxes[both] - slow_boxes[both])
    with VideoReader(path) as r:
        info = r.info
    return {
        "video": str(path),
        "size": f"{info.width}x{info.height}",
        "decode": decode,
        "extract_batched": fast,
        "extract_naive": slow,
        "speedup": round(slow["seconds"] / fast["seconds"], 2),
        "box_mean_abs_diff_px": round(float(diff.mean()), 2) if both.any() else None,
        "box_max_abs_diff_px": round(float(diff.max()), 2) if both.any() else None,
        "frames_compared": int(both.sum()),
    }


def run(out: Path, device: str = "cpu", frames_720p: int = 48) -> dict[str, Any]:
    """The whole preprocessing benchmark; writes ``out`` (JSON) and returns it."""
    import torch

    results: dict[str, Any] = {"device": device, "torch_threads": torch.get_num_threads()}
    results["sample"] = bench_video(SAMPLE_VIDEO, device)
    with tempfile.TemporaryDirectory() as tmp:
        synth = synthetic_720p(SAMPLE_VIDEO, Path(tmp) / "synthetic_720p.mp4", frames_720p)
        results["synthetic_720p"] = bench_video(synth, device)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results
