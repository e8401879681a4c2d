"""A tiny video classifier used only by the tests to drive the shared data module, CLI and loggers."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn


class TinyVideoClassifier(pl.LightningModule):
    """Per-frame conv features averaged over time -> 2 logits. ``video [B, T, 3, H, W]`` -> ``[B, 2]``."""

    def __init__(self, width: int = 4, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(width, 2)
        self.pending_media: dict[str, torch.Tensor] = {}

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        f = self.features(video.flatten(0, 1)).flatten(1).view(b, t, -1).mean(1)
        return self.head(f)

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        loss = nn.functional.cross_entropy(self(batch["video"]), batch["label"])
        self.log(f"{stage}/loss", loss, batch_size=len(batch["label"]))
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self.pending_media["val/summary"] = torch.rand(3, 16, 16)

    def visualize(self, batch: dict[str, Any], stage: str) -> dict[str, torch.Tensor]:
        return {f"{stage}/first_frame": batch["video"][0, 0], f"{stage}/clip": batch["video"][0]}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
