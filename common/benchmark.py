"""Face-tracking benchmark (``forgelab bench preprocess``): whole-video tracking frames/s against today's
every-frame MTCNN and the naive per-frame way, as ratios, with the boxes' agreement.

All ways run in the same process on the same frames, so the ratios do not depend on the machine's load.
The synthetic videos put the sample's talking face over a busy mosaic of photographs, the kind of
background on which MTCNN produces hundreds of candidate boxes per frame.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common.assets import SAMPLE_VIDEO
from common.encode import write_video
from common.faces import FaceExtractor
from common.tracking import TRACK_EVERY
from common.video import VideoReader


def clutter_background(width: int, height: int, tile: int = 160) -> np.ndarray:
    """uint8 ``[height, width, 3]``: a mosaic of scikit-image's bundled photographs (no faces), the kind of
    busy background on which face detectors produce many candidate boxes."""
    from skimage import data

    names = ("coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel",
             "colorwheel", "coins", "text", "page", "clock", "horse", "camera", "cell")  # fmt: skip
    tiles = []
    for name in names:
        img = getattr(data, name)()
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        tiles.append(np.asarray(Image.fromarray(img.astype(np.uint8)).resize((tile, tile), Image.BILINEAR)))
    rows, cols = -(-height // tile), -(-width // tile)
    grid = [[tiles[(r * 7 + c * 3) % len(tiles)] for c in range(cols)] for r in range(rows)]
    return np.concatenate([np.concatenate(row, axis=1) for row in grid], axis=0)[:height, :width].copy()


def synthetic_video(src: Path, out: Path, size: tuple[int, int] = (1280, 720), num_frames: int = 48,
                    clutter: bool = True) -> Path:  # fmt: skip
    """A ``size`` (width, height) video at 25 fps: the sample's talking face (its frames played forwards and
    backwards, scaled to 60 % of the frame height) drifting sideways over a busy background
    (:func:`clutter_background`, or smooth noise)."""
    width, height = size
    with VideoReader(src) as r:
        frames = r.read(list(range(min(num_frames, r.info.num_frames))))
    scale = 0.6 * height / frames.shape[1]
    h, w = (int(round(s * scale)) for s in frames.shape[1:3])
    if clutter:
        bg = clutter_background(width, height)
    else:
        rng = np.random.default_rng(0)
        bg = np.asarray(Image.fromarray(rng.integers(0, 255, (45, 80, 3), dtype=np.uint8)).resize(size))
    top = (height - h) // 3

    def gen() -> Iterator[np.ndarray]:
        for i in range(num_frames):
            canvas = bg.copy()
            j = i % (2 * len(frames) - 2) if len(frames) > 1 else 0  # forwards, then backwards: no cut
            src_frame = frames[j if j < len(frames) else 2 * len(frames) - 2 - j]
            big = np.asarray(Image.fromarray(src_frame).resize((w, h), Image.BILINEAR))
            x = (width - w) // 2 + int(0.2 * (width - w) * np.sin(i / 15))
            canvas[top : top + h, x : x + w] = big
            yield canvas

    return write_video(out, gen(), 25.0)


PEAK_WRAPPER = """
import sys
from common.commands import main
try:
    code = main(sys.argv[2:])
finally:
    with open("/proc/self/status") as status:
        peak = [line.split()[1] for line in status if line.startswith("VmHWM")]
    with open(sys.argv[1], "w") as out:
        out.write(peak[0] if peak else "")
sys.exit(code)
"""


def measure_command(args: list[str]) -> dict[str, float]:
    """Wall seconds and peak resident memory (MB) of one ``forgelab`` process.

    The peak is the process's own high-water mark (``VmHWM``) read as it exits: ``wait4``'s ``ru_maxrss``
    would report the parent's size, which a forked child counts until it executes the new program.
    """
    with tempfile.NamedTemporaryFile(suffix=".peak") as peak:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, peak.name, *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"forgelab {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
        kb = Path(peak.name).read_text().strip()
    return {"seconds": round(seconds, 2), "peak_mb": round(int(kb) / 1024, 1) if kb else float("nan")}


def time_decode(path: Path) -> dict[str, float]:
    """Sequential decode of every frame: frames/s."""
    start = time.perf_counter()
    with VideoReader(path) as r:
        n = sum(1 for _ in r.iter_frames())
    s = time.perf_counter() - start
    return {"frames": n, "seconds": round(s, 3), "frames_per_second": round(n / s, 1)}


def time_track(path: Path, extractor: FaceExtractor, every: int = 1,
               frames: int | None = None) -> tuple[dict[str, Any], np.ndarray]:  # fmt: skip
    """Whole-video face tracking (decode + detect + track, no crops) of the first ``frames`` frames (all
    when ``None``): frames/s and the smoothed boxes ``[N, 4]``."""
    start = time.perf_counter()
    with VideoReader(path) as r:
        indices = None if frames is None else list(range(min(frames, r.info.num_frames)))
        track = extractor.extract(r, indices, crops=False, detect_every=every)
    s = time.perf_counter() - start
    n = len(track.frame_indices)
    stats = {"frames": n, "seconds": round(s, 3), "frames_per_second": round(n / s, 2)}
    if track.interpolated is not None:
        stats["frames_detected"] = int((~track.interpolated).sum())
    return stats, track.boxes


def box_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean and max absolute difference of two box tracks ``[N, 4]`` over their common frames, in pixels."""
    n = min(len(a), len(b))
    diff = np.abs(a[:n] - b[:n])
    return {"box_mean_abs_diff_px": round(float(diff.mean()), 2), "box_max_abs_diff_px": round(float(diff.max()), 2)}


def bench_video(path: Path, device: str, naive_frames: int = 48) -> dict[str, Any]:
    """Whole-video tracking on one video, against today's two baselines in the same process:

    * ``tracked``: forgelab's tracking, batched MTCNN on key frames (:data:`TRACK_EVERY`), the rest
      interpolated;
    * ``every_frame_batched``: the previous default, facenet-pytorch's MTCNN on every frame (batches of
      4, reduced resolution);
    * ``per_frame_naive``: facenet-pytorch's MTCNN one full-resolution frame at a time (what most public
      detectors do), on the first ``naive_frames`` frames.
    """
    tracker = FaceExtractor(crop_size=224, device=device)
    before = FaceExtractor(crop_size=224, device=device, backend="facenet")
    naive = FaceExtractor(crop_size=224, device=device, backend="facenet", batch_size=1, detect_max_side=None,
                          smoothing_sigma=0)  # fmt: skip
    for extractor in (tracker, before, naive):  # warm-up: first calls build the convolution kernels
        time_track(path, extractor, 1, 4)
    decode = time_decode(path)
    tracked, tracked_boxes = time_track(path, tracker, TRACK_EVERY)
    batched, batched_boxes = time_track(path, before, 1)
    slow, _ = time_track(path, naive, 1, naive_frames)
    with VideoReader(path) as r:
        info = r.info
    return {
        "video": str(path),
        "size": f"{info.width}x{info.height}",
        "decode": decode,
        "tracked": tracked,
        "every_frame_batched": batched,
        "per_frame_naive": slow,
        "speedup_vs_every_frame": round(tracked["frames_per_second"] / batched["frames_per_second"], 2),
        "speedup_vs_per_frame": round(tracked["frames_per_second"] / slow["frames_per_second"], 2),
        **box_agreement(tracked_boxes, batched_boxes),
    }


def run(out: Path, device: str = "cpu", seconds: float = 10.0) -> dict[str, Any]:
    """The whole tracking benchmark (the sample, synthetic cluttered 720p and 1080p videos of ``seconds``);
    writes ``out`` (JSON) and returns it."""
    import torch

    results: dict[str, Any] = {"device": device, "torch_threads": torch.get_num_threads(), "key_every": TRACK_EVERY}
    results["sample"] = bench_video(SAMPLE_VIDEO, device)
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in (("synthetic_720p", (1280, 720)), ("synthetic_1080p", (1920, 1080))):
            video = synthetic_video(SAMPLE_VIDEO, Path(tmp) / f"{name}.mp4", size, int(25 * seconds))
            results[name] = bench_video(video, device)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results
