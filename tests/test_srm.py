"""The residual-noise filters of seed 002: the 30 SRM kernels match their definitions; Bayar's constraint holds."""

from __future__ import annotations

import torch

from detection.models.srm import BayarConv2d, SRMFilters, srm_kernels


def test_srm_bank_matches_its_definition() -> None:
    k = srm_kernels()[:, 0]
    assert k.shape == (30, 5, 5)
    assert torch.equal(k, k.round()) and k.sum(dim=(1, 2)).abs().max() == 0  # integer, zero-sum
    assert len({tuple(x.flatten().tolist()) for x in k}) == 30  # all different
    up = torch.zeros(5, 5)
    up[2, 2], up[1, 2] = -1, 1
    assert torch.equal(k[0], up)  # 1st order, d = (-1, 0)
    assert k[10][2].tolist() == [0, 1, -2, 1, 0] and k[10].abs().sum() == 4  # 2nd order, horizontal
    assert k[14][2].tolist() == [0, 1, -3, 3, -1] and k[14].abs().sum() == 8  # 3rd order, d = (0, 1)
    assert k[20][1:4, 1:4].tolist() == [[-1, 2, -1], [2, -4, 2], [-1, 2, -1]]  # KB
    assert k[25][2].tolist() == [-2, 8, -12, 8, -2] and k[25][0, 0] == -1  # KV
    assert k[21][3].abs().sum() == 0 and k[21][1].abs().sum() > 0  # EDGE 3x3, top half kept
    assert k[27][:, :2].abs().sum() == 0 and k[27][:, 2:].abs().sum() > 0  # EDGE 5x5, right half kept
    assert k[28][:2].abs().sum() == 0 and k[29][:, 3:].abs().sum() == 0  # bottom and left halves kept


def test_srm_layer_sees_residuals_only() -> None:
    layer = SRMFilters(threshold=3)
    flat = torch.full((1, 3, 16, 16), 120.0)
    assert layer(flat)[..., 2:-2, 2:-2].abs().max() < 1e-3  # no residual on a constant image (float rounding)
    edge = flat.clone()
    edge[..., 8:] = 200
    out = layer(edge)
    assert out.shape == (1, 30, 16, 16) and out.abs().max() == 3  # truncated at the threshold
    assert out[..., 2:-2, 2:6].abs().max() < 1e-3 and out[..., 2:-2, 7:9].abs().max() > 1  # only near the edge


def test_bayar_filters_predict_the_centre() -> None:
    torch.manual_seed(0)
    conv = BayarConv2d(3, 4, 5)
    w = conv.kernel()
    assert w.shape == (4, 3, 5, 5)
    assert torch.equal(w[..., 2, 2], -torch.ones(4, 3))
    assert torch.allclose(w.sum(dim=(2, 3)), torch.zeros(4, 3), atol=1e-6)  # off-centre weights sum to +1
    assert conv(torch.full((1, 3, 12, 12), 0.7))[..., 2:-2, 2:-2].abs().max() < 1e-5  # constant: no error
    conv(torch.rand(2, 3, 12, 12)).square().mean().backward()
    assert conv.off.grad is not None and conv.off.grad.abs().sum() > 0
