"""Segmenter benchmark (``forgelab bench-segmenter``): co-segmentation training and inference speed.

Training: the same model and batches run through (a) a plain fp32 PyTorch loop (forward, losses,
backward, Adam step) and (b) the Lightning system under ``Trainer.fit``, in the same process; the
ratio shows what the framework costs. Inference: segmentation frames/s at 256 px (published size, K 10).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from common.assets import SAMPLE_VIDEO
from generation.system import SegmenterSystem

REDUCED = {"num_segments": 10, "vgg": "random"}  # published widths; the resolution/batch set the cost


def _batches(n: int, batch: int, size: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"video": torch.rand(batch, 2, 3, size, size, generator=g), "label": torch.zeros(batch, dtype=torch.long),
             "video_id": ["x"] * batch, "frame_index": torch.zeros(batch, 2, dtype=torch.long)}
            for _ in range(n)]  # fmt: skip


def plain_loop(system: SegmenterSystem, batches: list[dict[str, torch.Tensor]], device: torch.device) -> float:
    """Iterations/s of a hand-written fp32 loop (first iteration excluded as warm-up)."""
    system.to(device).train()
    opt = system.configure_optimizers()
    times = []
    for batch in batches:
        start = time.perf_counter()
        video = batch["video"].to(device)
        terms, _ = system.losses(video[:, 0], video[:, 1])
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1 / (sum(times[1:]) / len(times[1:]))


def lightning_loop(system: SegmenterSystem, batches: list[dict[str, torch.Tensor]], precision: str) -> float:
    """Iterations/s of ``Trainer.fit`` on the same batches (first iteration excluded)."""
    import lightning.pytorch as pl

    stamps: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    trainer = pl.Trainer(max_steps=len(batches), logger=False, enable_checkpointing=False, precision=precision,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[Clock()],
                         accelerator="auto", devices=1)  # fmt: skip
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    trainer.fit(system, train_dataloaders=loader)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


@torch.no_grad()
def segmentation_fps(device: torch.device, size: int = 256, batch: int = 8, iters: int = 5) -> float:
    """Frames/s of the published-size segmentation module (K 10) in eval mode."""
    seg = SegmenterSystem(num_segments=10, vgg="random").segmentation_module.to(device).eval()
    x = torch.rand(batch, 3, size, size, device=device)
    seg(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        seg(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - start)


def swap_benchmark(size: int = 256) -> dict[str, Any]:
    """``forgelab swap`` on the bundled sample with a published-size model (K 10, random weights): frames/s
    of the model and what face tracking, cropping and paste-back cost next to it."""
    import tempfile

    from skimage.data import astronaut

    from generation.checkpoints import export_native
    from generation.swap import load_segmenter, swap_video

    sample = SAMPLE_VIDEO
    torch.manual_seed(0)
    system = SegmenterSystem(**REDUCED)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = export_native(system.segmentation_module, system.reconstruction_module, Path(tmp) / "vox10.pth.tar")
        source = Path(tmp) / "astronaut.png"
        from PIL import Image

        Image.fromarray(astronaut()).save(source)
        model = load_segmenter(ckpt, size=size)
        res = swap_video(model, source, sample, Path(tmp) / "out.mp4", [2], progress=False)
    t = res["timing"]
    return {"size": size, "frames": res["frames"], **t,
            "pipeline_vs_model_time": round((t["track_s"] + t["crop_s"] + t["paste_s"]) / t["model_s"], 3)}  # fmt: skip


def run(size: int, batch: int, iters: int) -> dict[str, Any]:
    """The benchmark at one configuration; returns the figures."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches = _batches(iters, batch, size)
    torch.manual_seed(0)
    plain = plain_loop(SegmenterSystem(**REDUCED), batches, device)
    torch.manual_seed(0)
    lightning = lightning_loop(SegmenterSystem(**REDUCED), batches, "32-true")
    return {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "config": {"size": size, "batch": batch, "num_segments": 10, "iterations": iters},
        "plain_fp32_it_per_s": round(plain, 4),
        "lightning_fp32_it_per_s": round(lightning, 4),
        "lightning_vs_plain": round(lightning / plain, 3),
        "segmentation_fps_256": round(segmentation_fps(device), 2),
        "swap_256": swap_benchmark(256),
    }
