"""The random geometric transform of the equivariance loss: affine + thin-plate spline (TPS).

z' = theta[:, :2] z + theta[:, 2] + sum_j c_j r_j^2 log(r_j + 1e-6), with r_j the L1 distance from z to
control point j. The TPS term is one scalar per point, added to both coordinates (as the original).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from generation.models.blocks import make_coordinate_grid


class Transform:
    """One random warp per batch element.

    Args:
        theta: ``[B, 2, 3]`` affine part.
        control_points: ``[P, P, 2]`` (or ``[1, P, P, 2]``) TPS control points in [-1, 1], (x, y).
        control_params: ``[B, 1, P*P]`` TPS weights.
    """

    def __init__(self, theta: torch.Tensor, control_points: torch.Tensor, control_params: torch.Tensor) -> None:
        self.theta = theta
        self.control_points = control_points.reshape(-1, 2)
        self.control_params = control_params

    @classmethod
    def random(
        cls,
        bs: int,
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.005,
        points_tps: int = 5,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Transform:
        """theta = I + N(0, sigma_affine^2); TPS weights N(0, sigma_tps^2) on a points_tps^2 grid."""
        noise = torch.randn(bs, 2, 3, generator=generator, device=device) * sigma_affine
        theta = noise + torch.eye(2, 3, device=device).view(1, 2, 3)
        points = make_coordinate_grid(points_tps, points_tps, device=device)
        params = torch.randn(bs, 1, points_tps**2, generator=generator, device=device) * sigma_tps
        return cls(theta, points, params)

    def warp_coordinates(self, coords: torch.Tensor) -> torch.Tensor:
        """Warp points ``[B, N, 2]`` -> ``[B, N, 2]``."""
        theta = self.theta.to(coords.dtype)
        out = torch.matmul(theta[:, None, :, :2], coords.unsqueeze(-1)).squeeze(-1) + theta[:, None, :, 2]
        points = self.control_points.to(coords.dtype)
        r = (coords.unsqueeze(2) - points.view(1, 1, -1, 2)).abs().sum(-1)  # L1 distance [B, N, P]
        tps = (r**2 * torch.log(r + 1e-6) * self.control_params.to(coords.dtype)).sum(dim=2, keepdim=True)
        return out + tps

    def jacobian(self, coords: torch.Tensor) -> torch.Tensor:
        """d warp / d coords at ``coords [B, N, 2]``: ``[B, N, 2, 2]`` (row = output coordinate).

        ``coords`` must require grad; the result keeps the graph (create_graph=True).
        """
        warped = self.warp_coordinates(coords)
        gx = torch.autograd.grad(warped[..., 0].sum(), coords, create_graph=True)[0]
        gy = torch.autograd.grad(warped[..., 1].sum(), coords, create_graph=True)[0]
        return torch.stack([gx, gy], dim=-2)

    def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """Resample ``frame [B, C, H, W]`` at the warped identity grid (border padding, align_corners)."""
        b, _, h, w = frame.shape
        grid = make_coordinate_grid(h, w, frame.dtype, frame.device).view(1, h * w, 2).expand(b, h * w, 2)
        grid = self.warp_coordinates(grid).view(b, h, w, 2)
        return F.grid_sample(frame, grid, padding_mode="border", align_corners=True)
