"""Detection benchmark (``forgelab bench-detector``): detect wall time vs the published project's way,
``detect --out`` (annotated video) wall time and peak memory against ``detect`` alone, and training clips/s.

Both ways score the same number of frames with the same full-size ResNeXt-LSTM (random weights; speed
does not depend on them), in the same process:

* forgelab: faces tracked with batched MTCNN at reduced resolution (every 2nd frame of each clip, the
  track interpolating the others) on K clips of T frames spread over the whole video, the K clips
  scored in one batch by a channels-last trunk;
* published way: the first K*T frames, faces detected one frame at a time at full resolution, one
  sequence of K*T frames scored.

``detect --out`` runs as the user runs it (a ``forgelab detect`` process) with a sample-sized detector
(random weights), on synthetic cluttered 720p and 1080p videos of 10 s and a 1080p one of 3 minutes;
peak memory is the process's own high-water resident set (``VmHWM``, shared libraries included; the
ffmpeg encoder is a separate process).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.assets import SAMPLE_VIDEO
from common.benchmark import measure_command
from common.faces import FaceExtractor, resolve_device
from common.frames import to_tensor_clip
from common.video import VideoReader
from detection.loading import LoadedDetector
from detection.models import ResNeXtLSTM
from detection.predict import analyse, extractor_for


def published_way(video: Path, model: torch.nn.Module, frames: int, size: int, device: torch.device) -> float:
    """Seconds to score the first ``frames`` frames with per-frame full-resolution face detection."""
    start = time.perf_counter()
    naive = FaceExtractor(crop_size=size, device=str(device), batch_size=1, detect_max_side=None, smoothing_sigma=0)
    with VideoReader(video) as reader:
        track = naive.extract(reader, list(range(min(frames, reader.info.num_frames))))
    clip = to_tensor_clip(track.crops, None)[None]
    model.to(memory_format=torch.contiguous_format)  # the published project's model
    with torch.no_grad():
        model(clip.to(device))
    return time.perf_counter() - start


def ours(video: Path, model: ResNeXtLSTM, clips: int, clip_len: int, size: int, device: torch.device) -> float:
    """Seconds for ``analyse`` (the code behind ``forgelab detect``) on the same number of frames."""
    start = time.perf_counter()
    model.input_spec = model.input_spec.replace(size=size, frames=clip_len)
    detector = LoadedDetector(model.to_channels_last(), "random", "forgelab", device)  # as load_detector does
    analyse(video, detector, extractor_for(detector), clips, clip_len)
    return time.perf_counter() - start


def sample_sized_checkpoint(path: Path) -> Path:
    """A checkpoint shaped like the sample detector's (ResNet-18 trunk, LSTM 128, 64 px, 4-frame clips) with
    random weights, in the layout a fit writes (speed and memory do not depend on the weights)."""
    from detection.models.base import SPEC_KEY

    torch.manual_seed(0)
    model = ResNeXtLSTM(trunk="resnet18", pretrained=False, hidden_size=128, dropout=0.0, head="mean")
    spec = model.input_spec.replace(size=64, frames=4)
    state = {f"detector.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"detector": model.config()}, SPEC_KEY: spec.to_dict()},
               path)  # fmt: skip
    return path


def annotate_costs(video: Path, checkpoint: Path, out_dir: Path) -> dict[str, Any]:
    """``detect`` with and without ``--out`` on one video: wall time, peak memory and the ratio."""
    plain = measure_command(["detect", str(video), "--checkpoint", str(checkpoint)])
    annotated = measure_command(["detect", str(video), "--checkpoint", str(checkpoint), "--out",
                                 str(out_dir / f"{video.stem}_annotated.mp4")])  # fmt: skip
    return {"detect": plain, "detect_out": annotated, "time_ratio": round(annotated["seconds"] / plain["seconds"], 2)}


def training_clips_per_s(device: torch.device, batch: int = 4, clip_len: int = 20, size: int = 112,
                         steps: int = 3) -> float:  # fmt: skip
    """Full ResNeXt-LSTM training steps (forward, backward, Adam) at 112 px: clips/s."""
    model = ResNeXtLSTM().to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5, weight_decay=1e-3)
    video = torch.rand(batch, clip_len, 3, size, size, device=device)
    label = torch.tensor([0, 1] * (batch // 2), device=device)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(video), label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return batch / float(np.mean(times[1:]))


def gmacs_per_frame(model: torch.nn.Module, clip: torch.Tensor, frames: int) -> float:
    """Multiply-accumulates (G) of one forward pass of ``clip`` per scored frame (``torch.utils.flop_counter``
    counts 2 FLOPs per multiply-accumulate; papers, the long-distance attention one included, quote MACs as "FLOPs")."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(clip)
    return counter.get_total_flops() / 2 / 1e9 / frames


def step_costs(model: torch.nn.Module, clip: torch.Tensor, frames: int, device: torch.device,
               bf16: bool = False, steps: int = 3) -> dict[str, float]:  # fmt: skip
    """Inference frames/s (scored frames) and training clips/s (forward, backward, SGD) of ``model`` on ``clip``
    ``[B, T, 3, S, S]``; ``bf16``: under bf16 autocast (GPU)."""
    from contextlib import nullcontext

    def timed(fn: Any) -> float:
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return float(np.mean(times[1:]))

    cast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    opt = torch.optim.SGD(model.parameters(), lr=3e-4, momentum=0.9)
    label = torch.arange(len(clip), device=device) % 2

    def train() -> None:
        with cast:
            loss = torch.nn.functional.cross_entropy(model(clip), label)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer() -> None:
        with cast, torch.inference_mode():
            model(clip)

    model.train()
    train_s = timed(train)
    model.eval()
    infer_s = timed(infer)
    return {"inference_frames_per_s": round(len(clip) * frames / infer_s, 3),
            "training_clips_per_s": round(len(clip) / train_s, 3)}  # fmt: skip


def attention_costs(device: torch.device, batch: int = 4) -> dict[str, Any]:
    """The long-distance attention detector at full size (Xception at 398 px, ViT-B/16 embeddings at 224 px, clips of
    n = 3 frames, one scored frame each) against its plain Xception backbone at 398 px in the same run: parameters,
    GMACs per frame, inference frames/s and training clips/s (fp32; bf16 too on a GPU)."""
    from detection.models import LongDistanceAttentionDetector
    from detection.models.xception import GuidedXception

    class PlainXception(torch.nn.Module):  # the baseline: the same backbone, no attention
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.fc = GuidedXception(), torch.nn.Linear(2048, 2)

        def forward(self, video: torch.Tensor) -> torch.Tensor:
            return self.fc(self.backbone(video[:, 0] * 2 - 1, {}).mean(dim=(2, 3)))

    torch.manual_seed(0)
    clip = torch.rand(batch, 3, 3, 398, 398, device=device)
    out: dict[str, Any] = {"device": str(device), "batch": batch}
    for name, model in (("long_distance_attention", LongDistanceAttentionDetector(pretrained_vit=False)),
                        ("xception_398", PlainXception())):  # fmt: skip
        model = model.to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        row: dict[str, Any] = {"params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                               "gmacs_per_frame": round(gmacs_per_frame(model, clip, batch), 2)}  # fmt: skip
        row["fp32"] = step_costs(model, clip, 1, device)
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            row["bf16"] = step_costs(model, clip, 1, device, bf16=True)
        out[name] = row
    a, b = out["long_distance_attention"]["fp32"], out["xception_398"]["fp32"]
    out["inference_ratio_vs_xception"] = round(a["inference_frames_per_s"] / b["inference_frames_per_s"], 3)
    out["training_ratio_vs_xception"] = round(a["training_clips_per_s"] / b["training_clips_per_s"], 3)
    return out


def run(clips: int = 4, clip_len: int = 20, size: int = 112, long_seconds: float = 180.0) -> dict[str, Any]:
    """The benchmark on the sample video and synthetic 720p / 1080p videos (``long_seconds``: the length of
    the long 1080p video for ``detect --out``; 0 skips it)."""
    from common.benchmark import synthetic_video

    device = resolve_device("auto")
    torch.manual_seed(0)
    model = ResNeXtLSTM().to(device).eval()
    out: dict[str, Any] = {"device": str(device), "frames_scored": clips * clip_len, "input_size": size}
    with tempfile.TemporaryDirectory() as tmp:
        videos = {
            "sample": SAMPLE_VIDEO,
            "synthetic_720p_10s": synthetic_video(SAMPLE_VIDEO, Path(tmp) / "s.mp4", (1280, 720), 250),
        }
        for name, video in videos.items():
            ours(video, model, 1, 2, size, device)  # warm-up (MTCNN and trunk)
            a = ours(video, model, clips, clip_len, size, device)
            b = published_way(video, model, clips * clip_len, size, device)
            out[name] = {"forgelab_s": round(a, 2), "published_way_s": round(b, 2), "speedup": round(b / a, 2)}
        ckpt = sample_sized_checkpoint(Path(tmp) / "sample_sized.ckpt")
        lengths = {"720p_10s": ((1280, 720), 10.0), "1080p_10s": ((1920, 1080), 10.0)}
        if long_seconds > 0:
            lengths[f"1080p_{long_seconds:g}s"] = ((1920, 1080), long_seconds)
        for name, (wh, seconds) in lengths.items():
            video = synthetic_video(SAMPLE_VIDEO, Path(tmp) / f"{name}.mp4", wh, int(25 * seconds))
            out[f"detect_out_{name}"] = annotate_costs(video, ckpt, Path(tmp))
            video.unlink()
    out["training_clips_per_s_112px_T20"] = round(training_clips_per_s(device), 3)
    out["attention_detector"] = attention_costs(device)
    return out
