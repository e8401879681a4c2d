"""The part-swap demo: the part covering the mouth in the sample video's most open-mouthed frame, swapped into
every frame of it (with the sample segmenter, that part is the face with the hair).

A part swap shows only where the source's part differs from the target's, so the demo picks a pair where the
difference is large: the source is the frame whose inner mouth is most open (dlib's 68 points) among the half
of the frames where the face sits in its crop most like it usually does (less warping, a sharper result), the
part is the segment that covers the mouth across the video (or, with a published vox checkpoint, its lips). Its
summary says how visible the swap is, measured on the side-by-side video it wrote (:func:`swap_visibility`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from common.assets import SAMPLE_VIDEO
from common.errors import CheckpointError
from common.weights import available, newest_checkpoint
from generation.swap import Segmenter, hard_segments, load_segmenter, segment_sheet, swap_video
from generation.system import segment_areas

SAMPLE_RUNS = Path("outputs/runs/segmenter_sample")
MOUTH = slice(48, 68)  # dlib's 68 points: outer and inner lips


def choose_segmenter(checkpoint: Path | None) -> tuple[Path, str | None, str]:
    """``(checkpoint, part names or None, which)``: the given file, else a published checkpoint in
    ``pretrained/``, else the newest sample segmenter run."""
    if checkpoint is not None:
        return checkpoint, None, "given checkpoint"
    for name, parts in (("coseg_vox10", "lips"), ("coseg_vox5", "hair")):
        found = available(name)
        if found is not None:
            return found, parts, f"published {found.name}"
    found = newest_checkpoint(SAMPLE_RUNS)
    if found is None:
        raise CheckpointError("pretrained/vox-10segments.pth.tar", "not found, and no sample segmenter run: "
                              "run `make train-segmenter` first")  # fmt: skip
    return found, None, "the sample segmenter trained here on the bundled video"


def mouth_points(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """dlib's 68 points ``[N, 68, 2]`` (frame pixels) of every frame's face box ``[N, 4]``."""
    from common.landmarks import landmarks68

    side = float(np.median(boxes[:, 2] - boxes[:, 0]))
    return landmarks68(frames, boxes, spread=side / 32)


def typical_pose(crop_points: np.ndarray, keep: float = 0.5) -> np.ndarray:
    """bool ``[N]``: the frames whose face sits in its crop most like the median frame (the ``keep`` share with
    the smallest mean distance of the 68 points, in crop pixels ``[N, 68, 2]``, to their median), so a swap from
    one of them into the others needs little warping."""
    distance = np.linalg.norm(crop_points - np.median(crop_points, axis=0), axis=-1).mean(-1)
    return distance <= np.quantile(distance, keep)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-mouth aspect ratio ``[N]`` (0 closed; about 0.5 wide open) of 68 points ``[N, 68, 2]``."""
    from common.landmarks import INNER_MOUTH, aspect_ratio

    return aspect_ratio(torch.from_numpy(points), INNER_MOUTH).numpy()


@torch.no_grad()
def mouth_part(model: Segmenter, crops: np.ndarray, points: np.ndarray) -> tuple[int, list[float]]:
    """The segment that covers the mouth: for each segment k, the share of the lips' bounding box (from the
    68 points in crop pixels ``[N, 68, 2]``) its soft mask takes in the crops ``[N, S, S, 3]``, averaged over
    frames.

    Returns:
        ``(k, shares [K])``.
    """
    from generation.swap import to_tensor

    dev = next(model.segmentation.parameters()).device
    size = crops.shape[1]
    shares = np.zeros(model.num_segments)
    for i in range(0, len(crops), 16):
        seg = model.segmentation(to_tensor(crops[i : i + 16], dev))["segmentation"]
        seg = F.interpolate(seg, size=(size, size), mode="bilinear", align_corners=False).cpu().numpy()
        for s, p in zip(seg, points[i : i + 16]):
            lips = p[MOUTH]
            x0, y0 = np.floor(lips.min(0)).astype(int).clip(0, size - 1)
            x1, y1 = np.ceil(lips.max(0)).astype(int).clip(1, size)
            shares += s[1:, y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].mean(axis=(1, 2))  # soft: sums to 1 with bg
    shares /= len(crops)
    return int(shares.argmax()) + 1, [round(float(v), 4) for v in shares]


def swap_visibility(video: str | Path, masks: np.ndarray, inside: float = 0.5) -> dict[str, Any]:
    """How visible a part swap is, measured on the side-by-side video (source | target | result) it wrote.

    Args:
        video: the side-by-side video; its frames are ``[H, H + 2 W, 3]`` (the source crop scaled to ``H``).
        masks: the paste-back weight of every pixel, uint8 ``[N, H, W]`` (``swap_video(keep_masks=True)``).
        inside: the part's region is where the weight is at least this.

    Returns:
        ``p99_inside`` (99th percentile of ``|result - target|``, max over channels, 0-255, over the part's
        pixels), ``median_outside`` (the same, median, where the weight is 0: beyond the feathered edge),
        ``max_outside``, ``part_share`` (share of the frame the part covers), the frame where the part differs
        most (``most_visible_frame``) and a typical one (``typical_frame``: the median of the frames' own 99th
        percentiles).
    """
    from common.video import read_frames

    frames = read_frames(video, range(len(masks)))
    _, h, w = masks.shape
    target = frames[:, :, h : h + w].astype(np.int16)
    result = frames[:, :, h + w : h + 2 * w].astype(np.int16)
    diff = np.abs(result - target).max(-1)
    part, rest = masks >= round(inside * 255), masks == 0
    per_frame = [float(np.percentile(d[m], 99)) if m.any() else 0.0 for d, m in zip(diff, part)]
    return {
        "p99_inside": round(float(np.percentile(diff[part], 99)), 2) if part.any() else 0.0,
        "median_outside": round(float(np.median(diff[rest])), 2) if rest.any() else 0.0,
        "max_outside": int(diff[rest].max()) if rest.any() else 0,
        "part_share": round(float(part.mean()), 4),
        "most_visible_frame": int(np.argmax(per_frame)),
        "typical_frame": int(np.argsort(per_frame)[len(per_frame) // 2]),
    }


def still(video: str | Path, index: int, scale: int = 3) -> np.ndarray:
    """Frame ``index`` of a video, enlarged ``scale`` times (RGB uint8)."""
    from PIL import Image

    from common.video import read_frames

    frame = read_frames(video, [index])[0]
    h, w = frame.shape[:2]
    return np.asarray(Image.fromarray(frame).resize((w * scale, h * scale), Image.LANCZOS))


def swap_demo(out: Path, checkpoint: Path | None = None) -> dict[str, Any]:
    """Write into ``out``: ``carphone_swap_source.png`` (the chosen source face), ``carphone_segments.png`` (its
    segments), ``carphone_swap.mp4`` (source | target | result), ``carphone_swap.png`` (a typical frame of it,
    enlarged) and ``carphone_swap.json`` (choices, visibility, timing); returns the summary."""
    from PIL import Image

    from common.faces import FaceExtractor
    from common.faces import landmarks_in_crop as to_crop
    from common.outputs import write_all
    from common.video import VideoReader

    ckpt, part_names, which = choose_segmenter(checkpoint)
    model = load_segmenter(ckpt, device="auto")
    extractor = FaceExtractor(crop_size=model.size, margin=model.margin or 1.6, device="cpu")
    with VideoReader(SAMPLE_VIDEO) as reader:
        track = extractor.extract(reader, crops=True)
        frames = reader.read(list(range(reader.info.num_frames)))
    assert track.crops is not None
    points = mouth_points(frames, track.boxes)
    crop_points = to_crop(points, track.crop_boxes, model.size)
    opening = mouth_opening(points)
    source = int(np.argmax(np.where(typical_pose(crop_points), opening, -1.0)))  # widest open, in a usual pose
    k, shares = mouth_part(model, track.crops, crop_points)
    parts = model.parse_parts(part_names) if part_names else [k]
    src_crop = track.crops[source]
    out.mkdir(parents=True, exist_ok=True)
    res = swap_video(model, src_crop, SAMPLE_VIDEO, out / "carphone_swap.mp4", parts, side_by_side=True,
                     source_cropped=True, keep_masks=True)  # fmt: skip
    masks = res.pop("masks")
    seen = swap_visibility(res["output"], masks)
    areas = [round(float(a), 4) for a in segment_areas(hard_segments(model, src_crop)[0])]
    summary = {
        **res, "model": which, "source_frame": source, "mouth_opening": {
            "source": round(float(opening[source]), 3), "median": round(float(np.median(opening)), 3)},
        "part_choice": "the checkpoint's named part" if part_names else "the segment covering the mouth",
        "mouth_shares": shares, "visibility": seen, "segment_areas": areas,
        "segments_sheet": str(out / "carphone_segments.png"),
    }  # fmt: skip
    big_source = np.asarray(Image.fromarray(src_crop).resize((model.size * 4, model.size * 4), Image.LANCZOS))
    write_all(out, {"carphone_swap_source.png": big_source,
                    "carphone_segments.png": np.asarray(segment_sheet(model, src_crop, scale=4)),
                    "carphone_swap.png": still(res["output"], seen["typical_frame"]),
                    "carphone_swap.json": json.dumps(summary, indent=2)})  # fmt: skip
    return summary
