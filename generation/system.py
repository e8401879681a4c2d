"""``SegmenterSystem``: the segmenter (self-supervised motion co-segmentation) as a LightningModule.

A batch of (source, driving) frame pairs of one video (the data module's ``pair`` mode) trains the
segmentation module to explain the motion between them (paper Sec. 3): the driving frame is rebuilt
from the source's warped features, so parts must move coherently. Losses: the VGG19 perceptual pyramid
and the equivariance of shifts and affines under a random warp, as the original (weights 10).

Precision: measured on the parity fixture, bf16 autocast moves the dense flow by up to 0.015 (0.23
pixels at the 32-pixel segmentation grid) and the prediction by 0.13, far outside the fixture
tolerances (1e-4 and 1e-3), so the experiments run in fp32 (TF32 matmuls allowed on GPU for training).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F

from generation.checkpoints import load_published
from generation.losses import PerceptualPyramidLoss, equivariance_losses
from generation.models import ReconstructionModule, SegmentationModule
from generation.transform import Transform


def segment_colours(num_segments: int) -> torch.Tensor:
    """``[K+1, 3]`` colours: black background, part i = gist_rainbow((i - 1) / K) as the original."""
    from matplotlib import colormaps

    cmap = colormaps["gist_rainbow"]
    cols = [(0.0, 0.0, 0.0)] + [tuple(cmap((i - 1) / num_segments)[:3]) for i in range(1, num_segments + 1)]
    return torch.tensor(cols, dtype=torch.float32)


def colourise(segmentation: torch.Tensor, size: Sequence[int], hard: bool = False) -> torch.Tensor:
    """``[B, K+1, h, w]`` segments -> ``[B, 3, H, W]`` colour map (soft mix or argmax)."""
    seg = F.interpolate(segmentation.float(), size=tuple(size), mode="bilinear", align_corners=False)
    if hard:
        seg = F.one_hot(seg.argmax(1), seg.shape[1]).permute(0, 3, 1, 2).float()
    colours = segment_colours(seg.shape[1] - 1).to(seg.device)
    return torch.einsum("bkhw,kc->bchw", seg, colours)


class SegmenterSystem(pl.LightningModule):
    """Segmentation + reconstruction modules trained jointly (paper Sec. 3).

    Args:
        num_segments: K parts (channel 0 of the segmentation is the background).
        num_channels: image channels.
        estimate_affine_part: per-part affine motion (else shift only).
        seg_block_expansion: segmentation hourglass base width.
        seg_max_features: segmentation hourglass width cap.
        seg_num_blocks: segmentation hourglass depth.
        temperature: shift heatmap softmax temperature.
        scale_factor: segmentation input downsampling (0.25: 256 -> 64).
        rec_block_expansion: reconstruction base width.
        rec_max_features: reconstruction width cap.
        rec_num_down_blocks: reconstruction downsamplings (must reach the segmentation resolution).
        rec_num_bottleneck_blocks: residual blocks.
        estimate_visibility: background visibility mask.
        lr_segmentation: Adam learning rate of the segmentation module.
        lr_reconstruction: Adam learning rate of the reconstruction module.
        betas: Adam betas (0.5, 0.999 as the original).
        scales: perceptual pyramid scales.
        perceptual_weights: weight of each VGG layer (relu1_1..relu5_1); zeros disable VGG.
        equivariance_weight: weight of both equivariance terms (0 disables them).
        sigma_affine: equivariance warp: affine noise.
        sigma_tps: equivariance warp: TPS noise.
        points_tps: equivariance warp: TPS grid side.
        vgg: ``"imagenet"`` (local file, see ``pretrained/``) or ``"random"`` (no download possible:
            tests and the CPU sample experiment).
        init_from: a first-order-model or native checkpoint to warm-start from (as the authors did).
        part_names: optional names of segment indices (e.g. ``{2: "lips"}``), stored with checkpoints.
    """

    def __init__(
        self,
        num_segments: int = 10,
        num_channels: int = 3,
        estimate_affine_part: bool = True,
        seg_block_expansion: int = 32,
        seg_max_features: int = 1024,
        seg_num_blocks: int = 5,
        temperature: float = 0.1,
        scale_factor: float = 0.25,
        rec_block_expansion: int = 64,
        rec_max_features: int = 512,
        rec_num_down_blocks: int = 2,
        rec_num_bottleneck_blocks: int = 6,
        estimate_visibility: bool = True,
        lr_segmentation: float = 2e-4,
        lr_reconstruction: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        scales: tuple[float, ...] = (1, 0.5, 0.25, 0.125),
        perceptual_weights: tuple[float, ...] = (10, 10, 10, 10, 10),
        equivariance_weight: float = 10.0,
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.005,
        points_tps: int = 5,
        vgg: str = "imagenet",
        init_from: str | None = None,
        part_names: dict[int, str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.segmentation_module = SegmentationModule(
            seg_block_expansion, num_segments, num_channels, seg_max_features, seg_num_blocks, temperature,
            estimate_affine_part, scale_factor,
        )  # fmt: skip
        self.reconstruction_module = ReconstructionModule(
            num_channels, rec_block_expansion, rec_max_features, rec_num_down_blocks, rec_num_bottleneck_blocks,
            num_segments, estimate_visibility,
        )  # fmt: skip
        self.perceptual = PerceptualPyramidLoss(scales, perceptual_weights, vgg)
        self.pending_media: dict[str, torch.Tensor] = {}
        self._warm_started = False

    # ------------------------------------------------------------------ model
    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> dict[str, Any]:
        """Reconstruct ``driving`` from ``source`` (both ``[B, 3, H, W]`` in [0, 1])."""
        seg_source = self.segmentation_module(source)
        seg_target = self.segmentation_module(driving)
        out = self.reconstruction_module(source, seg_target=seg_target, seg_source=seg_source)
        return {**out, "seg_source": seg_source, "seg_target": seg_target}

    def losses(self, source: torch.Tensor, driving: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """All loss terms (unweighted sum is the total) and the forward outputs."""
        out = self(source, driving)
        terms = {"perceptual": self.perceptual(out["prediction"], driving)}
        if self.hparams.equivariance_weight:
            h = self.hparams
            transform = Transform.random(len(driving), h.sigma_affine, h.sigma_tps, h.points_tps, driving.device)
            eq, _ = equivariance_losses(self.segmentation_module, driving, out["seg_target"], transform,
                                        h.equivariance_weight)  # fmt: skip
            terms.update(eq)
        terms["loss"] = sum(terms.values())
        return terms, out

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.init_from and not self._warm_started:
            fmt = load_published(self.hparams.init_from, self.segmentation_module, self.reconstruction_module,
                                 allow_missing_segmentation=True)  # fmt: skip
            self.print(f"warm start from {self.hparams.init_from} ({fmt} format)")
            self._warm_started = True

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._warm_started = True  # resuming: never overwrite trained weights with the warm start

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None:  # the crop size and margin the model was trained on, for `swap` and `segments`
            checkpoint["forgelab_data"] = {"size": int(dm.size), "margin": float(dm.margin)}

    @staticmethod
    def _pair(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        video = batch["video"]
        return video[:, 0], video[:, 1]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        source, driving = self._pair(batch)
        terms, _ = self.losses(source, driving)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True, batch_size=len(source))
        return terms["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        source, driving = self._pair(batch)
        out = self(source, driving)
        metrics = {
            "val/l1": (out["prediction"] - driving).abs().mean(),
            "val/active_segments": float((segment_areas(out["seg_target"]["segmentation"])[1:] > 0.01).sum()),
        }
        if self.perceptual.enabled:
            metrics["val/perceptual"] = self.perceptual(out["prediction"], driving)
        self.log_dict(metrics, prog_bar=True, batch_size=len(source), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        h = self.hparams
        return torch.optim.Adam(
            [
                {
                    "params": self.reconstruction_module.parameters(),
                    "lr": h.lr_reconstruction,
                    "name": "reconstruction",
                },
                {"params": self.segmentation_module.parameters(), "lr": h.lr_segmentation, "name": "segmentation"},
            ],
            betas=tuple(h.betas),
        )

    # ------------------------------------------------------------------ pictures
    @torch.no_grad()
    def visualize(self, batch: dict[str, Any], stage: str, rows: int = 4) -> dict[str, torch.Tensor]:
        """The original's grid, one row per sample: source, driving, deformed, prediction, soft segments,
        overlay, hard segments, overlay, visibility. Returns ``{name: [3, H_grid, W_grid]}``."""
        was_training = self.training
        self.eval()
        source, driving = (x[:rows] for x in self._pair(batch))
        out = self(source, driving)
        self.train(was_training)
        size = driving.shape[2:]
        soft = colourise(out["seg_target"]["segmentation"], size)
        hard = colourise(out["seg_target"]["segmentation"], size, hard=True)
        cols = [source, driving, out["deformed"], out["prediction"], soft, 0.3 * driving + 0.7 * soft, hard,
                0.3 * driving + 0.7 * hard]  # fmt: skip
        if "visibility_maps" in out:
            vis = F.interpolate(out["visibility_maps"], size=size, mode="bilinear", align_corners=False)
            cols.append(vis.expand(-1, 3, -1, -1))
        grid = torch.cat([torch.cat(list(c.float().clamp(0, 1)), dim=1) for c in cols], dim=2)  # rows x columns
        if size[0] < 128:  # small models: enlarge so the segments can be seen
            grid = F.interpolate(grid[None], scale_factor=128 // size[0], mode="nearest")[0]
        return {f"{stage}/reconstruction": grid}

    def part_names(self) -> dict[int, str]:
        """Names of segment indices, when known."""
        return {int(k): v for k, v in (self.hparams.part_names or {}).items()}


def segment_areas(segmentation: torch.Tensor) -> np.ndarray:
    """Share of pixels won by each channel (argmax) ``[K+1]``, averaged over the batch."""
    hard = segmentation.argmax(1)
    counts = torch.bincount(hard.flatten(), minlength=segmentation.shape[1]).float()
    return (counts / counts.sum()).cpu().numpy()
