"""MTCNN face detection with every stage batched (Zhang et al., "Joint Face Detection and Alignment Using
Multitask Cascaded Convolutional Networks", IEEE SPL 2016).

The three networks and their weights are facenet-pytorch's (``PNet``, ``RNet``, ``ONet``; the weights ship
inside the package, so this works offline). The cascade is the same as facenet-pytorch's ``detect_face``
(same image pyramid, thresholds, NMS, box regression and squaring), with one difference that matters for
speed: facenet-pytorch cuts and resamples every candidate box of the refinement stages with its own
``interpolate`` call, and a cluttered background produces thousands of candidates per frame (measured:
51,156 separate calls, 124 s, on one 275-frame 640x360 clip). Here all candidates of a batch of frames are
resampled at once from a summed-area table (the same area averaging, computed with four gathers), so a
frame costs a few network calls whatever its background, and boxes match facenet-pytorch's to a small
fraction of a pixel (``tests/test_tracking.py``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms


@dataclass
class Detections:
    """All faces found in one frame.

    Attributes:
        boxes: float32 ``[n, 4]`` as ``(x1, y1, x2, y2)`` pixels.
        scores: float32 ``[n]`` detection probabilities.
        landmarks: float32 ``[n, 5, 2]`` (eyes, nose, mouth corners) as ``(x, y)``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


CELL = 12  # PNet's receptive field in pixels
STRIDE = 2  # PNet's output stride


def _load(net: nn.Module, name: str) -> nn.Module:
    """Load facenet-pytorch's bundled weights ``data/<name>.pt`` into ``net`` (``weights_only``)."""
    import facenet_pytorch

    path = os.path.join(os.path.dirname(facenet_pytorch.__file__), "data", f"{name}.pt")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes ``[K, 4]`` -> squares ``[K, 4]`` with the same centre and side ``max(w, h)`` (MTCNN's ``rerec``)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x0 = boxes[:, 0] + (w - side) / 2
    y0 = boxes[:, 1] + (h - side) / 2
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply the networks' box regression ``[K, 4]`` (fractions of the inclusive width and height)."""
    wh = (boxes[:, 2:] - boxes[:, :2] + 1).repeat(1, 2)
    return boxes + offsets * wh


def nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS where overlap is intersection over the *smaller* box (MTCNN's last stage).

    Args:
        boxes: ``[K, 4]`` inclusive pixel boxes.
        scores: ``[K]``.
        threshold: drop a box whose overlap with a kept, higher-scoring box exceeds this.

    Returns:
        int64 indices of the kept boxes, best first.
    """
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]) + 1)
        ih = np.maximum(0.0, np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]) + 1)
        order = rest[iw * ih / np.minimum(area[i], area[rest]) <= threshold]
    return np.asarray(keep, dtype=np.int64)


class BatchedMTCNN(nn.Module):
    """MTCNN over a batch of same-size frames, every stage one batched call.

    Args:
        min_face_size: smallest face searched for, in pixels (sets the first pyramid scale, ``12 / size``).
        thresholds: score thresholds of the three stages.
        factor: scale step of the image pyramid.
    """

    def __init__(self, min_face_size: int = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709) -> None:  # fmt: skip
        super().__init__()
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

        self.min_face_size = min_face_size
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = factor
        # channels-last convolutions: measured 3x faster for P-Net and 1.7x for O-Net on the CPU
        self.pnet = _load(PNet(pretrained=False), "pnet").to(memory_format=torch.channels_last)
        self.rnet = _load(RNet(pretrained=False), "rnet").to(memory_format=torch.channels_last)
        self.onet = _load(ONet(pretrained=False), "onet").to(memory_format=torch.channels_last)

    def scales(self, height: int, width: int) -> list[float]:
        """The image pyramid: scales from ``12 / min_face_size`` down by ``factor`` while the short side >= 12."""
        scale = CELL / self.min_face_size
        short = min(height, width) * scale
        out = []
        while short >= CELL:
            out.append(scale)
            scale *= self.factor
            short *= self.factor
        return out

    def proposals(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1 (P-Net over the pyramid).

        Args:
            x: float ``[B, 3, H, W]`` in [0, 255].

        Returns:
            ``(boxes [K, 4] squared candidate boxes, image index [K])``.
        """
        h, w = x.shape[2:]
        boxes, scores, images, offsets = [], [], [], []
        for scale in self.scales(h, w):
            im = F.interpolate(x, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            reg, prob = self.pnet(((im - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last))
            where = (prob[:, 1] >= self.thresholds[0]).nonzero()  # [k, 3]: image, row, col
            pos = where[:, [2, 1]].to(x.dtype)
            b = torch.cat([((STRIDE * pos + 1) / scale).floor(), ((STRIDE * pos + CELL) / scale).floor()], dim=1)
            s = prob[where[:, 0], 1, where[:, 1], where[:, 2]]
            o = reg[where[:, 0], :, where[:, 1], where[:, 2]]
            keep = batched_nms(b, s, where[:, 0], 0.5)  # within each scale and image
            boxes.append(b[keep])
            scores.append(s[keep])
            images.append(where[keep, 0])
            offsets.append(o[keep])
        b, s, i, o = (torch.cat(v) for v in (boxes, scores, images, offsets))
        keep = batched_nms(b, s, i, 0.7)  # across scales
        b, i, o = b[keep], i[keep], o[keep]
        wh = (b[:, 2:] - b[:, :2]).repeat(1, 2)  # stage 1 regresses on the exclusive size
        return square(b + o * wh), i

    @staticmethod
    def integral(x: torch.Tensor) -> torch.Tensor:
        """Summed-area table ``[B, 3, H + 1, W + 1]`` (float64: exact for 8-bit images) of ``x [B, 3, H, W]``."""
        return F.pad(x.double().cumsum(2).cumsum(3), (1, 0, 1, 0))

    def resample(self, table: torch.Tensor, boxes: torch.Tensor, images: torch.Tensor, size: int,
                 chunk: int = 512) -> torch.Tensor:  # fmt: skip
        """Cut every candidate (integer box clipped to the frame) and resize it to ``size`` by area averaging,
        ``chunk`` candidates at a time: ``[K, 3, S, S]`` normalised for the networks.

        Output pixel ``(i, j)`` of a crop of ``h x w`` pixels at ``(y0, x0)`` is the mean over rows
        ``[y0 + floor(i h / S), y0 + ceil((i + 1) h / S))`` and the same for columns: exactly what the
        reference's per-candidate ``interpolate(mode="area")`` (adaptive average pooling) computes, read
        from the summed-area ``table`` (:meth:`integral`) with four gathers. The gathers are float64 ``[k, S, S,
        3]``; in chunks their memory stays bounded (a cluttered 1080p batch has thousands of candidates: ~300 MB
        at once).
        """
        if len(boxes) > chunk:
            return torch.cat([self.resample(table, boxes[s : s + chunk], images[s : s + chunk], size, chunk)
                              for s in range(0, len(boxes), chunk)])  # fmt: skip
        h, w = table.shape[2] - 1, table.shape[3] - 1
        b = boxes.trunc().long()
        x0 = b[:, 0].clamp(min=1) - 1  # the 1-based inclusive convention of the reference code, clipped
        y0 = b[:, 1].clamp(min=1) - 1
        x1 = b[:, 2].clamp(max=w)
        y1 = b[:, 3].clamp(max=h)
        i = torch.arange(size, device=boxes.device)

        def edges(start: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            lo = start[:, None] + torch.div(i[None] * length[:, None], size, rounding_mode="floor")
            hi = start[:, None] - torch.div(-(i[None] + 1) * length[:, None], size, rounding_mode="floor")
            return lo, hi

        r0, r1 = edges(y0, y1 - y0)  # [K, S]
        c0, c1 = edges(x0, x1 - x0)
        img = images[:, None, None]

        def at(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
            return table[img, :, rows[:, :, None], cols[:, None, :]]  # [K, S, S, 3]

        sums = at(r1, c1) - at(r0, c1) - at(r1, c0) + at(r0, c0)
        area = ((r1 - r0)[:, :, None] * (c1 - c0)[:, None, :]).unsqueeze(-1)
        crops = (sums / area).float().permute(0, 3, 1, 2)
        return ((crops - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)

    @staticmethod
    def run_padded(net: nn.Module, crops: torch.Tensor, multiple: int, chunk: int = 128) -> tuple[torch.Tensor, ...]:
        """``net(crops)`` with the batch zero-padded to a multiple of ``multiple``, outputs cut back: the
        networks then see few distinct batch sizes, so the convolution backends' per-shape caches and
        buffers stay bounded over a long video (memory grew by ~70 MB per 1,000 frames otherwise). At most
        ``chunk`` crops per call (a multiple of ``multiple``): R-Net's first activations take ~0.1 MB a crop, and a
        cluttered 1080p batch has thousands of candidates."""
        k = len(crops)
        padded = -(-k // multiple) * multiple
        if padded != k:
            crops = torch.cat([crops, crops.new_zeros((padded - k, *crops.shape[1:]))])
        parts = [net(crops[s : s + chunk]) for s in range(0, padded, chunk)]
        return tuple(torch.cat(outs)[:k] for outs in zip(*parts))

    def valid(self, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """bool ``[K]``: candidates whose clipped box still holds at least one pixel."""
        b = boxes.trunc()
        return (b[:, 2].clamp(max=width) > b[:, 0].clamp(min=1) - 1) & (
            b[:, 3].clamp(max=height) > b[:, 1].clamp(min=1) - 1
        )

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> list[Detections]:
        """Detect all faces.

        Args:
            frames: uint8 or float ``[B, H, W, 3]`` RGB (0-255).

        Returns:
            one :class:`Detections` per frame (in the frames' pixel coordinates), best score first.
        """
        dev = next(self.pnet.parameters()).device
        x = frames.to(dev).permute(0, 3, 1, 2).float()
        bsz, _, h, w = x.shape
        boxes, images = self.proposals(x)
        table = self.integral(x)  # crops of both refinement stages are read from it
        # stage 2: R-Net refines and rejects
        ok = self.valid(boxes, h, w)
        boxes, images = boxes[ok], images[ok]
        if len(boxes):
            reg, prob = self.run_padded(self.rnet, self.resample(table, boxes, images, 24), 32)
            keep = prob[:, 1] > self.thresholds[1]
            boxes, images, reg, score = boxes[keep], images[keep], reg[keep], prob[keep, 1]
            keep = batched_nms(boxes, score, images, 0.7)
            boxes = square(regress(boxes[keep], reg[keep]))
            images = images[keep]
        # stage 3: O-Net scores, regresses and places the 5 landmarks
        ok = self.valid(boxes, h, w)
        boxes, images = boxes[ok], images[ok]
        if not len(boxes):
            return [Detections.empty() for _ in range(bsz)]
        reg, marks, prob = self.run_padded(self.onet, self.resample(table, boxes, images, 48), 4)  # 0.7 ms a crop
        keep = prob[:, 1] > self.thresholds[2]
        boxes, images, reg, marks, score = boxes[keep], images[keep], reg[keep], marks[keep], prob[keep, 1]
        wh = boxes[:, 2:] - boxes[:, :2] + 1
        points = torch.stack([marks[:, :5] * wh[:, :1] + boxes[:, :1] - 1,
                              marks[:, 5:] * wh[:, 1:] + boxes[:, 1:2] - 1], dim=2)  # fmt: skip
        boxes = regress(boxes, reg)
        b, s, p, im = (v.cpu().numpy() for v in (boxes, score, points, images))
        out = []
        for i in range(bsz):
            sel = np.flatnonzero(im == i)
            sel = sel[nms_min(b[sel], s[sel], 0.7)]
            out.append(Detections(b[sel].astype(np.float32), s[sel].astype(np.float32), p[sel].astype(np.float32)))
        return out
