"""Convolutional traces (Guarnera, Giudice and Battiato, "Fighting Deepfake by Exposing the Convolutional Traces on
Images", IEEE Access 2020; seed 002): the local convolution kernel a generator's last layers leave in an image,
estimated per colour channel with the Expectation-Maximization model of Popescu and Farid (2005).

Each pixel ``I(x, y)`` of a channel is either (M1) a linear combination of its ``N x N`` neighbours with kernel ``k``
(``k(0, 0) = 0``) plus Gaussian noise ``N(0, sigma^2)``, or (M2) an outlier, uniform over the value range
(``p0 = 1 / 256`` for 8-bit values). EM alternates

* E-step: residual ``R = I - sum_{(s,t) != 0} k(s,t) I(x+s, y+t)``, ``P1 = exp(-R^2 / 2 sigma^2) / (sigma sqrt(2 pi))``,
  weight ``w = P1 / (P1 + p0)``;
* M-step: weighted least squares ``(sum w n n^T) k = sum w n I`` over the neighbour vectors ``n``, and
  ``sigma^2 = sum w R^2 / sum w``;

until ``max |k_new - k_old| < tol``. The fingerprint of an image is the concatenation of its channels' kernels
(``C (N^2 - 1)`` values). Everything runs batched over images and channels (float32 sums, the
``[B*C, N^2-1, N^2-1]`` normal equations solved in float64), on valid pixels only (no padding bias).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def neighbours(images: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``images [B, C, H, W]`` -> (neighbour vectors ``[B*C, N^2-1, L]``, centre values ``[B*C, L]``) over the ``L``
    valid positions of an ``N x N`` window (``N = size``; for even N the centre is ``(N // 2, N // 2)``)."""
    b, c, h, w = images.shape
    if h < size or w < size:
        raise ValueError(f"images of {h}x{w} pixels are smaller than the {size}x{size} kernel")
    cols = F.unfold(images.reshape(b * c, 1, h, w), size)  # [B*C, N*N, L]
    centre = (size // 2) * size + size // 2
    keep = [i for i in range(size * size) if i != centre]
    return cols[:, keep], cols[:, centre]


def em_kernels(
    images: torch.Tensor,
    size: int = 3,
    iterations: int = 50,
    tol: float = 1e-4,
    sigma0: float = 2.0,
    p0: float = 1 / 256,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """The EM estimate of each channel's convolution kernel (module docstring).

    Args:
        images: ``[B, C, H, W]`` pixel values on a 0-255 scale (any float or uint8 dtype).
        size: kernel side N (3, 4 or 5 in the paper's experiments).
        iterations: EM iterations at most.
        tol: stop when no kernel weight moves more than this.
        sigma0: initial noise standard deviation (0-255 scale).
        p0: density of the outlier model (1 / the value range).
        ridge: added to the normal equations' diagonal (flat regions make them singular).

    Returns:
        float32 ``[B, C, N*N]`` kernels with the centre weight 0 (row-major over the window).
    """
    b, c = images.shape[:2]
    x, y = neighbours(images.to(torch.float32), size)  # [M, K, L], [M, L] with M = B*C, K = N*N - 1
    m, k_dim, _ = x.shape
    # every image starts from the neighbours' mean (not a random kernel, as Popescu and Farid do): the EM may stop at
    # ``iterations`` before converging, and a fingerprint must not depend on the batch an image was computed in
    k = torch.full((m, k_dim), 1.0 / k_dim, device=x.device)
    sigma = torch.full((m, 1), float(sigma0), device=x.device)
    eye = torch.eye(k_dim, dtype=torch.float64, device=x.device)
    for _ in range(iterations):
        r = y - torch.bmm(k[:, None], x)[:, 0]  # E-step
        p1 = torch.exp(-(r**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
        wgt = p1 / (p1 + p0)
        xw = x * wgt[:, None]  # M-step: weighted normal equations
        a = torch.bmm(xw, x.transpose(1, 2)).double() + ridge * eye
        rhs = torch.bmm(xw, y[:, :, None]).double()
        new = torch.linalg.solve(a, rhs)[..., 0].float()
        r = y - torch.bmm(new[:, None], x)[:, 0]
        sigma = ((wgt * r**2).sum(1, keepdim=True) / wgt.sum(1, keepdim=True).clamp_min(1e-12)).sqrt().clamp_min(1e-3)
        moved = (new - k).abs().max()
        k = new
        if moved < tol:
            break
    centre = (size // 2) * size + size // 2
    full = torch.zeros(m, size * size, device=x.device)
    full[:, [i for i in range(size * size) if i != centre]] = k
    return full.view(b, c, size * size)


def fingerprints(images: torch.Tensor, size: int = 3, chunk: int = 16, **em: float) -> torch.Tensor:
    """Convolutional-trace vectors ``[B, C (N^2 - 1)]`` of ``images [B, C, H, W]`` (0-255), ``chunk`` images per EM
    call (the neighbour matrix of a 256-px RGB crop at N = 5 takes ~18 MB)."""
    centre = (size // 2) * size + size // 2
    out = []
    for s in range(0, len(images), chunk):
        kern = em_kernels(images[s : s + chunk], size, **em)
        keep = [i for i in range(size * size) if i != centre]
        out.append(kern[..., keep].flatten(1))
    return torch.cat(out)
