"""Hand-crafted per-frame cues of seed 002's detector, and their summaries over a clip (spec section 4).

* Landmarks (:func:`landmark_cues`): dlib's 68 points of the face, aligned (eyes' midpoint at the origin,
  inter-ocular distance 1, eyes level), plus both eye aspect ratios and the mouth's opening. Over a clip
  (:func:`summarise_landmarks`): the mean shape, the ratios' spread, and the jitter of each region (jaw, brows,
  nose, eyes, mouth): the mean frame-to-frame displacement, where a swapped face deforms and trembles.
* Quality (:func:`quality_cues`): blur and sharpness of the face crop, which a blended or generated face softens:
  log variance of the Laplacian, log Tenengrad (Sobel energy), the share of spectral energy above half the Nyquist
  frequency, the face's Laplacian variance against the ring around it (log ratio), and Crete et al.'s blur metric
  (``skimage.measure.blur_effect``, 0 sharp to 1 blurred). Over a clip (:func:`summarise_quality`): mean, standard
  deviation and mean absolute frame-to-frame change.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from common.landmarks import INNER_MOUTH, LEFT_EYE, REGIONS, RIGHT_EYE, aligned, aspect_ratio, landmarks68

LANDMARK_WIDTH = 68 * 2 + 3  # aligned points, right EAR, left EAR, mouth opening
QUALITY_WIDTH = 5
LANDMARK_SUMMARY_WIDTH = LANDMARK_WIDTH + 3 + len(REGIONS)  # mean, std of the three ratios, jitter per region
QUALITY_SUMMARY_WIDTH = 3 * QUALITY_WIDTH
GREY = (0.299, 0.587, 0.114)


def face_boxes(n: int, size: int, margin: float) -> np.ndarray:
    """The face box ``[n, 4]`` of square crops of side ``size`` cut at ``margin`` (the crop is centred on it)."""
    side = size / max(margin, 1.0)
    lo, hi = (size - side) / 2, (size + side) / 2
    return np.tile(np.array([lo, lo, hi, hi], np.float32), (n, 1))


def landmark_cues(frames: torch.Tensor, margin: float) -> torch.Tensor:
    """``frames [N, 3, S, S]`` RGB in [0, 1] (face crops cut at ``margin``) -> ``[N, LANDMARK_WIDTH]`` (points averaged
    over 9 face boxes ``S / 32`` px apart: :func:`~common.landmarks.landmarks68`)."""
    images = (frames.detach().float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    size = frames.shape[-1]
    points = torch.from_numpy(landmarks68(images, face_boxes(len(images), size, margin), spread=size / 32))
    return landmark_vector(points).to(frames.device, frames.dtype)


def landmark_vector(points: torch.Tensor) -> torch.Tensor:
    """68 points ``[N, 68, 2]`` (pixels) -> ``[N, LANDMARK_WIDTH]``: aligned points and three aspect ratios
    (invariant to translating, rotating and scaling the points)."""
    ratios = [aspect_ratio(points, RIGHT_EYE), aspect_ratio(points, LEFT_EYE), aspect_ratio(points, INNER_MOUTH)]
    return torch.cat([aligned(points).flatten(1), torch.stack(ratios, 1)], 1)


def summarise_landmarks(cues: torch.Tensor) -> torch.Tensor:
    """Per-frame landmark cues ``[B, T, LANDMARK_WIDTH]`` -> clip features ``[B, LANDMARK_SUMMARY_WIDTH]``: the
    mean, the ratios' standard deviation and each region's jitter (mean displacement between consecutive frames,
    in inter-ocular distances; 0 for one frame)."""
    points = cues[..., : 68 * 2].unflatten(-1, (68, 2))
    ratios = cues[..., 68 * 2 :]
    spread = ratios.std(1, unbiased=False)
    if cues.shape[1] > 1:
        step = (points[:, 1:] - points[:, :-1]).norm(dim=-1).mean(1)  # [B, 68]
    else:
        step = points.new_zeros(points.shape[0], 68)
    jitter = torch.stack([step[:, a:b].mean(1) for a, b in REGIONS.values()], 1)
    return torch.cat([cues.mean(1), spread, jitter], 1)


def quality_cues(frames: torch.Tensor, margin: float) -> torch.Tensor:
    """``frames [N, 3, S, S]`` RGB in [0, 1] -> ``[N, QUALITY_WIDTH]`` (module docstring for the order)."""
    from skimage.measure import blur_effect

    x = frames.detach().float()
    grey = (x * x.new_tensor(GREY).view(1, 3, 1, 1)).sum(1, keepdim=True)  # [N, 1, S, S]
    lap = F.conv2d(grey, x.new_tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3))[:, 0]
    sobel = x.new_tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
    gx, gy = F.conv2d(grey, sobel)[:, 0], F.conv2d(grey, sobel.transpose(-1, -2))[:, 0]
    eps = 1e-8
    log_lap = (lap.flatten(1).var(1) + eps).log()
    tenengrad = ((gx**2 + gy**2).flatten(1).mean(1) + eps).log()
    g = grey[:, 0]
    power = torch.fft.fft2(g - g.mean((-1, -2), keepdim=True)).abs() ** 2
    fy, fx = (torch.fft.fftfreq(n, device=x.device).abs() for n in g.shape[-2:])
    high = torch.maximum(fy[:, None], fx[None, :]) > 0.25  # above half the Nyquist frequency (0.5 cycles / px)
    hf_share = (power * high).flatten(1).sum(1) / (power.flatten(1).sum(1) + eps)
    inner = torch.zeros_like(lap[0], dtype=torch.bool)
    side = lap.shape[-1]
    half = max(1, int(round(side / max(margin, 1.0) * 0.5 * 0.8)))  # the face's inner 80 %
    inner[side // 2 - half : side // 2 + half, side // 2 - half : side // 2 + half] = True
    ring = ~inner if (~inner).any() else inner
    face_vs_ring = (lap[:, inner].var(1) + eps).log() - (lap[:, ring].var(1) + eps).log()
    crete = torch.tensor([blur_effect(g.cpu().numpy(), h_size=11) for g in grey[:, 0]], dtype=x.dtype)
    return torch.stack([log_lap, tenengrad, hf_share, face_vs_ring, crete.to(x.device)], 1).to(frames.dtype)


def summarise_quality(cues: torch.Tensor) -> torch.Tensor:
    """Per-frame quality cues ``[B, T, QUALITY_WIDTH]`` -> ``[B, QUALITY_SUMMARY_WIDTH]``: mean, standard deviation
    and mean absolute change between consecutive frames (0 for one frame)."""
    change = (cues[:, 1:] - cues[:, :-1]).abs().mean(1) if cues.shape[1] > 1 else torch.zeros_like(cues[:, 0])
    return torch.cat([cues.mean(1), cues.std(1, unbiased=False), change], 1)
