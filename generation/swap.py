"""Face part swapping on ordinary videos: ``forgelab swap`` and ``forgelab segments``.

The target face is tracked through every frame (the detector on key frames, boxes interpolated between
them, :mod:`common.tracking`), cropped square with a margin like the model's
training crops, swapped at the model's resolution in feature space (:func:`swap_parts`), and pasted
back into the full frame through the blend mask, upsampled and feathered: pixels where that mask is 0
keep their exact original values. Output keeps the target's size, fps and audio.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from common.encode import write_video
from common.errors import CheckpointError, ConfigError, NoFaceError, VideoWriteError
from common.faces import FaceExtractor, crop_square, region_overlap, resolve_device
from common.frames import to_tensor_clip
from common.masks import feather as feather_mask
from common.tracking import TRACK_EVERY
from common.video import VideoReader, read_image
from common.weights import read_checkpoint
from generation.checkpoints import build_modules, load_state, split_formats
from generation.models import ReconstructionModule, SegmentationModule
from generation.part_swap import blend_mask, swap_parts
from generation.system import colourise, segment_colours

# Segment names of the published vox checkpoints, from the authors' demo notebook.
PUBLISHED_PART_NAMES = {10: {2: "lips", 7: "eyes", 9: "eyes"}, 5: {1: "beard", 3: "hair", 4: "hair", 5: "hair"}}


@dataclass
class Segmenter:
    """A loaded co-segmentation model ready for inference."""

    segmentation: SegmentationModule
    reconstruction: ReconstructionModule
    size: int
    kind: str
    path: str
    part_names: dict[int, str] = field(default_factory=dict)
    margin: float | None = None

    @property
    def num_segments(self) -> int:
        return self.segmentation.num_segments

    def parse_parts(self, text: str) -> list[int]:
        """``"2"``, ``"7,9"`` or names (``"lips,eyes"``) -> segment indices, with a clear error otherwise."""
        k = self.num_segments
        names = {v: [i for i, n in self.part_names.items() if n == v] for v in set(self.part_names.values())}
        valid = f"valid: 1..{k}" + (f" or {', '.join(sorted(names))}" if names else "")
        out: list[int] = []
        for token in (t.strip() for t in text.split(",") if t.strip()):
            if token.isdigit():
                i = int(token)
                if not 1 <= i <= k:
                    raise ConfigError(f"--parts {token} is outside 1..{k} ({valid}; 0 is the background)")
                out.append(i)
            elif token.lower() in names:
                out.extend(names[token.lower()])
            else:
                raise ConfigError(f"--parts {token!r} is not a segment index or known name ({valid})")
        if not out:
            raise ConfigError(f"--parts is empty ({valid})")
        return sorted(set(out))


def infer_model_params(seg: dict[str, torch.Tensor], rec: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The original YAML ``model_params`` recovered from state-dict shapes (any width/depth/K)."""
    n_seg_blocks = len({k.split(".")[3] for k in seg if k.startswith("predictor.encoder.down_blocks.")})
    seg_widths = [seg[f"predictor.encoder.down_blocks.{i}.conv.weight"].shape[0] for i in range(n_seg_blocks)]
    n_down = len({k.split(".")[1] for k in rec if k.startswith("down_blocks.")})
    n_bottleneck = len({k.split(".")[1] for k in rec if k.startswith("bottleneck.")})
    rec_widths = [rec[f"down_blocks.{i}.conv.weight"].shape[0] for i in range(n_down)]
    down = seg.get("down.weight")
    scale = 1.0 if down is None else 1.0 / (2 * ((down.shape[-1] - 1) // 2 / 4) + 1)
    return {
        "common_params": {"num_segments": int(seg["shift.weight"].shape[0]), "num_channels": 3,
                          "estimate_affine_part": "affine.weight" in seg},
        "segmentation_module_params": {"block_expansion": seg_widths[0] // 2, "max_features": max(seg_widths),
                                       "num_blocks": n_seg_blocks, "temperature": 0.1, "scale_factor": scale},
        "reconstruction_module_params": {"block_expansion": int(rec["first.conv.weight"].shape[0]),
                                         "max_features": max(rec_widths), "num_down_blocks": n_down,
                                         "num_bottleneck_blocks": n_bottleneck, "estimate_visibility": True},
    }  # fmt: skip


def load_segmenter(path: str | Path, num_segments: int | None = None, size: int | None = None,
                   device: str = "auto") -> Segmenter:  # fmt: skip
    """Load our Lightning checkpoint, a native or a first-order-model file; ``num_segments`` asserts K."""
    data = read_checkpoint(path)
    seg_state, rec_state, fmt = split_formats(data, str(path))
    if "shift.weight" not in seg_state or "first.conv.weight" not in rec_state:
        raise CheckpointError(path, "incomplete co-segmentation checkpoint (no shift head or encoder)")
    params = infer_model_params(seg_state, rec_state)
    k = params["common_params"]["num_segments"]
    if num_segments is not None and num_segments != k:
        raise CheckpointError(path, f"checkpoint has {k} segments, the configuration asks for {num_segments}")
    if "segmentation.weight" not in seg_state:
        raise CheckpointError(path, "a keypoint-only first-order-model file has no segmentation: it cannot swap parts")
    seg, rec = build_modules(params)
    load_state(seg, rec, seg_state, rec_state, str(path))
    names = PUBLISHED_PART_NAMES.get(k, {}) if fmt != "lightning" else {}
    model_size, margin = 256, None
    if fmt == "lightning":
        hp = data.get("hyper_parameters", {})
        names = {int(i): str(n) for i, n in (hp.get("part_names") or {}).items()}
        trained = data.get("forgelab_data", {})
        model_size, margin = int(trained.get("size", 256)), trained.get("margin")
    dev = resolve_device(device)
    return Segmenter(seg.to(dev).eval(), rec.to(dev).eval(), size or model_size, fmt, str(path), names, margin)


def face_crop(image: np.ndarray, extractor: FaceExtractor, source: str) -> np.ndarray:
    """The largest face of a still image, cropped square with the extractor's margin and size."""
    det = extractor.detect(image[None])
    track = extractor.build_track(np.zeros(1, np.int64), det, (image.shape[1], image.shape[0]), source)
    return crop_square(image, track.crop_boxes[0], extractor.crop_size)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> float ``[B, 3, H, W]`` in [0, 1] on ``device``."""
    return to_tensor_clip(images, None).to(device)


@torch.no_grad()
def swap_batch(
    model: Segmenter,
    source: torch.Tensor,
    seg_source: dict[str, torch.Tensor],
    targets: torch.Tensor,
    parts: Sequence[int],
    hard: bool,
    use_source_segmentation: bool,
    source_features: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap ``parts`` of ``source [1, 3, S, S]`` into ``targets [B, 3, S, S]``.

    Returns:
        ``(predictions [B, 3, S, S], blend masks in target coordinates [B, 1, S, S])``.
    """
    b = len(targets)
    src = source.expand(b, -1, -1, -1)
    seg_s = {k: v.expand(b, *v.shape[1:]) for k, v in seg_source.items()}
    seg_t = model.segmentation(targets)
    mask = blend_mask((seg_s if use_source_segmentation else seg_t)["segmentation"], parts, hard)
    feats = None if source_features is None else source_features.expand(b, *source_features.shape[1:])
    pred = swap_parts(model.reconstruction, src, targets, seg_s, seg_t, mask, use_source_segmentation, feats)
    if use_source_segmentation:  # the mask as it lands in the target (for the paste-back)
        from generation.models.reconstruction import dense_flow, warp

        mask = warp(mask, dense_flow(seg_t, seg_s))
    size = targets.shape[-2:]
    return pred, F.interpolate(mask, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def paste_back(frame: np.ndarray, region: np.ndarray, crop: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend ``crop [S, S, 3]`` into ``frame`` over the square ``region`` with ``alpha [S, S]`` in [0, 1].

    Pixels where the resized alpha is 0 (and everything outside the region) keep their exact values.
    """
    out = frame.copy()
    overlap = region_overlap(region, frame.shape)
    if overlap is None:
        return out
    in_frame, in_region = overlap
    side = int(region[2]) - int(region[0])
    big = np.asarray(Image.fromarray(crop).resize((side, side), Image.BILINEAR)).astype(np.float32)
    a = _region_alpha(alpha, side)[in_region][..., None] / 255
    region_px = out[in_frame].astype(np.float32)
    blended = region_px + a * (big[in_region] - region_px)
    out[in_frame] = np.where(a > 0, np.round(blended).clip(0, 255), region_px).astype(np.uint8)
    return out


def _region_alpha(alpha: np.ndarray, side: int) -> np.ndarray:
    """``alpha [S, S]`` in [0, 1] resized to the region's ``side`` as :func:`paste_back` uses it: float32, 0-255."""
    return np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).resize((side, side), Image.BILINEAR)).astype(
        np.float32)  # fmt: skip


def frame_alpha(frame_shape: tuple[int, ...], region: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The blend weight :func:`paste_back` gives every pixel of a frame: uint8 ``[H, W]`` (255 = the result's
    pixel, 0 = the frame's own)."""
    out = np.zeros(frame_shape[:2], np.uint8)
    overlap = region_overlap(region, frame_shape)
    if overlap is not None:
        in_frame, in_region = overlap
        out[in_frame] = _region_alpha(alpha, int(region[2]) - int(region[0]))[in_region].astype(np.uint8)
    return out


def feather(mask: torch.Tensor, sigma_fraction: float = 0.03) -> torch.Tensor:
    """Soften mask edges ``[B, 1, S, S]`` (values below 1e-3 become exactly 0)."""
    return feather_mask(mask.float().cpu(), sigma_fraction * mask.shape[-1])


def swap_video(
    model: Segmenter,
    source_image: str | Path | np.ndarray,
    target_video: str | Path,
    out: str | Path,
    parts: Sequence[int],
    hard: bool = False,
    use_source_segmentation: bool = False,
    side_by_side: bool = False,
    margin: float | None = None,
    source_cropped: bool = False,
    batch_size: int = 8,
    progress: bool = True,
    frames: tuple[int, int] | None = None,
    crf: int = 18,
    keep_masks: bool = False,
) -> dict[str, Any]:
    """The whole pipeline: source face crop, target face track, batched swap, paste-back, write.

    ``source_image`` is an image file or an RGB uint8 ``[H, W, 3]`` array; ``frames`` keeps only the target's
    frames ``start:stop`` (written without audio, which would no longer be in sync); ``crf``: the output's x264
    quality; ``keep_masks``: also return ``masks``, the paste-back weight of every pixel of every frame (uint8
    ``[N, H, W]``, :func:`frame_alpha`; for short videos)."""
    from tqdm import tqdm

    dev = next(model.segmentation.parameters()).device
    margin = margin or model.margin or 1.6
    extractor = FaceExtractor(crop_size=model.size, margin=margin, device=str(dev))
    image = source_image if isinstance(source_image, np.ndarray) else read_image(source_image)
    src_name = "the source image" if isinstance(source_image, np.ndarray) else str(source_image)
    src_crop = ensure_face(image, extractor, src_name, source_cropped, model.size)
    source = to_tensor(src_crop[None], dev)
    with torch.no_grad():
        seg_source = model.segmentation(source)
        source_features = model.reconstruction.encode(source)  # once for the whole video
    timing = {"track_s": 0.0, "crop_s": 0.0, "model_s": 0.0, "paste_s": 0.0}
    start = time.perf_counter()
    with VideoReader(target_video) as reader:
        info = reader.info
        times = reader.frame_times()  # kept in the output (variable frame rates stay in sync with the audio)
        start_f, stop_f = (
            (0, info.num_frames) if frames is None else (max(0, frames[0]), min(frames[1], info.num_frames))
        )
        if stop_f <= start_f:
            raise ConfigError(f"frames {frames} are outside the video's {info.num_frames} frames")
        indices = None if frames is None else list(range(start_f, stop_f))
        times = None if times is None else times[start_f:stop_f]
        track = extractor.extract(reader, indices, crops=False, detect_every=TRACK_EVERY)  # NoFaceError: no face
    timing["track_s"] = time.perf_counter() - start
    if not Path(out).parent.exists():
        raise VideoWriteError(out, f"folder {Path(out).parent} does not exist")
    boxes = track.crop_boxes

    masks: list[np.ndarray] = []

    def swapped() -> Iterator[np.ndarray]:
        bar = tqdm(total=stop_f - start_f, desc="swap", unit="frame", disable=not progress)
        with VideoReader(target_video) as reader:
            pos = 0
            for _, chunk in reader.iter_chunks(batch_size, indices):
                t0 = time.perf_counter()
                regions = boxes[pos : pos + len(chunk)]
                crops = np.stack([crop_square(f, r, model.size) for f, r in zip(chunk, regions)])
                t1 = time.perf_counter()
                pred, mask = swap_batch(model, source, seg_source, to_tensor(crops, dev), parts, hard,
                                        use_source_segmentation, source_features)  # fmt: skip
                alpha = feather(mask)[:, 0].numpy()
                pred_u8 = (pred.permute(0, 2, 3, 1).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
                t2 = time.perf_counter()
                results = [paste_back(f, r, p, a) for f, r, p, a in zip(chunk, regions, pred_u8, alpha)]
                if keep_masks:
                    masks.extend(frame_alpha(f.shape, r, a) for f, r, a in zip(chunk, regions, alpha))
                timing["crop_s"] += t1 - t0
                timing["model_s"] += t2 - t1
                timing["paste_s"] += time.perf_counter() - t2
                for frame, result in zip(chunk, results):
                    yield side_by_side_frame(src_crop, frame, result) if side_by_side else result
                pos += len(chunk)
                bar.update(len(chunk))
        bar.close()

    start = time.perf_counter()
    path = write_video(out, swapped(), info.fps, audio_from=target_video if frames is None else None, times=times,
                       crf=crf)  # fmt: skip
    total = time.perf_counter() - start + timing["track_s"]
    n = stop_f - start_f
    model_fps = round(n / timing["model_s"], 2) if timing["model_s"] else None
    extra = {"masks": np.stack(masks)} if keep_masks else {}
    return {
        **extra,
        "output": str(path),
        "frames": n,
        "fps": info.fps,
        "size": [info.width, info.height],
        "parts": list(parts),
        "frames_without_face": int(track.missing().sum()),
        "checkpoint": model.path,
        "checkpoint_kind": model.kind,
        "timing": {**{k: round(v, 3) for k, v in timing.items()}, "total_s": round(total, 3),
                   "swap_fps": model_fps, "end_to_end_fps": round(n / total, 2)},
    }  # fmt: skip


def side_by_side_frame(source_crop: np.ndarray, target: np.ndarray, result: np.ndarray) -> np.ndarray:
    """source | target | result, the source crop scaled to the frame height."""
    h = target.shape[0]
    src = np.asarray(Image.fromarray(source_crop).resize((h, h), Image.BILINEAR))
    return np.concatenate([src, target, result], axis=1)


@torch.no_grad()
def hard_segments(model: Segmenter, image: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The soft segmentation ``[1, K + 1, h, w]`` of a face crop ``image [S, S, 3]`` and its arg-max labels at the
    crop's size (int ``[S, S]``, 0 = background)."""
    x = to_tensor(image[None], next(model.segmentation.parameters()).device)
    seg = model.segmentation(x)["segmentation"]
    size = image.shape[0]
    hard = seg.argmax(1, keepdim=True).float()
    return seg, F.interpolate(hard, size=(size, size), mode="nearest")[0, 0].cpu().numpy().astype(int)


@torch.no_grad()
def segment_sheet(model: Segmenter, image: np.ndarray, scale: int = 2) -> Image.Image:
    """Each segment in its colour over the face, labelled with its index (and name when known), plus a legend."""
    seg, up = hard_segments(model, image)
    size = image.shape[0]
    colours = colourise(seg, (size, size), hard=True)[0].permute(1, 2, 0).cpu().numpy()
    overlay = (0.45 * image / 255 + 0.55 * colours).clip(0, 1)
    big = Image.fromarray((overlay * 255).astype(np.uint8)).resize((size * scale, size * scale), Image.NEAREST)
    legend_h = 18 * (model.num_segments + 1) + 8
    sheet = Image.new("RGB", (size * scale * 2 + 170, max(size * scale, legend_h)), (25, 25, 25))
    sheet.paste(Image.fromarray(image).resize((size * scale, size * scale), Image.BILINEAR), (0, 0))
    sheet.paste(big, (size * scale, 0))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:
        font = ImageFont.load_default()
    palette = (segment_colours(model.num_segments).numpy() * 255).astype(int)
    for k in range(1, model.num_segments + 1):
        ys, xs = np.nonzero(up == k)
        if len(xs):
            cx, cy = size * scale + xs.mean() * scale, ys.mean() * scale
            draw.text((cx - 4, cy - 7), str(k), fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    for k in range(model.num_segments + 1):
        y = 6 + 18 * k
        x = size * scale * 2 + 10
        draw.rectangle([x, y, x + 14, y + 14], fill=tuple(int(c) for c in palette[k]))
        name = "background" if k == 0 else model.part_names.get(k, "")
        area = float((up == k).mean()) * 100
        draw.text((x + 20, y), f"{k} {name} ({area:.0f} %)".replace("  ", " "), fill=(230, 230, 230), font=font)
    return sheet


def face_segment_sheet(model: Segmenter, image: np.ndarray, source: str, margin: float | None = None,
                       source_cropped: bool = False) -> Image.Image:  # fmt: skip
    """The :func:`segment_sheet` of the face found in ``image`` (RGB uint8; ``source`` names it in errors)."""
    dev = next(model.segmentation.parameters()).device
    extractor = FaceExtractor(crop_size=model.size, margin=margin or model.margin or 1.6, device=str(dev))
    return segment_sheet(model, ensure_face(image, extractor, source, source_cropped, model.size))


def segment_sheet_file(model: Segmenter, image: str | Path, out: str | Path, margin: float | None = None,
                       source_cropped: bool = False) -> Path:  # fmt: skip
    """Write the :func:`segment_sheet` of the face in ``image`` to ``out`` (PNG, appears only when complete)."""
    out = Path(out)
    sheet = face_segment_sheet(model, read_image(image), str(image), margin, source_cropped)
    if not out.parent.is_dir():
        raise VideoWriteError(out, f"folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.partial.png")
    sheet.save(tmp)
    os.replace(tmp, out)
    return out


def ensure_face(image: np.ndarray, extractor: FaceExtractor, source: str, cropped: bool, size: int) -> np.ndarray:
    """The face crop of an image (or the whole image resized when it is already a crop)."""
    if cropped:
        return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    try:
        return face_crop(image, extractor, source)
    except NoFaceError:
        raise NoFaceError(source, "pass --source-cropped if the image is already a face crop") from None
