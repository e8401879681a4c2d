"""``DetectionSystem``: the ResNeXt-LSTM detector as a LightningModule.

Cross-entropy on 2 logits (index 1 = fake), Adam (lr 1e-5, weight decay 1e-3 by default, the seed
report's recipe). Validation and test compute ACC, AUC, AP and EER on clip scores p(fake) and on video
scores (clips aggregated by ``mean``, ``max`` or the DFDC ``confident`` rule), log the video-level ROC
curve and confusion matrix as images, and the experiments keep the checkpoint with the best
**validation** video AUC. On a GPU the trunk runs channels-last (bf16-mixed comes from the run's
precision); on the CPU fp32.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F

from detection.metrics import aggregate, binary_metrics, confusion_image, roc_image
from detection.models import ResNeXtLSTM


class DetectionSystem(pl.LightningModule):
    """Video-level real/fake classifier.

    Args:
        trunk: torchvision name (``resnext50_32x4d``) or ``timm:<name>``.
        pretrained: ImageNet-initialised trunk from a local file (see ``pretrained/``).
        hidden_size: LSTM width.
        num_layers: LSTM layers.
        dropout: dropout before the head.
        head: classify the ``last`` LSTM state or the ``mean`` over time.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        aggregation: clip -> video score rule (``mean``, ``max``, ``confident``).
        channels_last: channels-last trunk; ``None`` = on GPU only.
        lr_schedule: ``"constant"`` (the recipe) or ``"cosine"`` decay to 0 over the run (settles
            BatchNorm statistics, hence calibration, when training from scratch at a high rate).
    """

    def __init__(
        self,
        trunk: str = "resnext50_32x4d",
        pretrained: bool = False,
        hidden_size: int = 2048,
        num_layers: int = 1,
        dropout: float = 0.4,
        head: Literal["last", "mean"] = "last",
        lr: float = 1e-5,
        weight_decay: float = 1e-3,
        aggregation: Literal["mean", "max", "confident"] = "mean",
        channels_last: bool | None = None,
        lr_schedule: Literal["constant", "cosine"] = "constant",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = ResNeXtLSTM(trunk, pretrained, hidden_size, num_layers, dropout, head)
        self.pending_media: dict[str, torch.Tensor] = {}
        self._outputs: dict[str, list[tuple[float, int, str]]] = {"val": [], "test": []}
        self.data_settings: dict[str, Any] = {}

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``video [B, T, 3, H, W]`` RGB [0, 1] -> logits ``[B, 2]``."""
        return self.model(video)

    def setup(self, stage: str) -> None:
        use = self.hparams.channels_last
        if use or (use is None and self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"):
            self.model.trunk.to(memory_format=torch.channels_last)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None:
            self.data_settings = {"clip_len": int(dm.clip_len), "size": int(dm.size), "frame_stride": dm.frame_stride}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["forgelab_data"] = dict(self.data_settings)  # clip length and crop size for `detect`

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.data_settings = dict(checkpoint.get("forgelab_data", {}))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch["video"])
        loss = F.cross_entropy(logits, batch["label"])
        acc = (logits.argmax(1) == batch["label"]).float().mean()
        self.log_dict({"train/loss": loss, "train/acc": acc}, prog_bar=True, batch_size=len(logits))
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        logits = self(batch["video"])
        loss = F.cross_entropy(logits, batch["label"])
        self.log(f"{stage}/loss", loss, batch_size=len(logits), sync_dist=True)
        p_fake = logits.float().softmax(1)[:, 1].detach().cpu().tolist()
        self._outputs[stage].extend(zip(p_fake, batch["label"].cpu().tolist(), batch["video_id"]))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _gathered(self, stage: str) -> list[tuple[float, int, str]]:
        rows = self._outputs[stage]
        self._outputs[stage] = []
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(parts, rows)
            rows = [r for part in parts for r in part]
        return rows

    def _epoch_end(self, stage: str) -> None:
        rows = self._gathered(stage)
        if not rows:
            return
        scores, labels, ids = zip(*rows)
        clip = binary_metrics(scores, labels)
        v_scores, v_labels, _ = aggregate(scores, labels, ids, self.hparams.aggregation)
        video = binary_metrics(v_scores, v_labels)
        metrics = {f"{stage}/clip_{k}": clip[k] for k in ("acc", "auc", "ap", "eer")}
        metrics.update({f"{stage}/video_{k}": video[k] for k in ("acc", "auc", "ap", "eer")})
        self.log_dict(metrics, prog_bar=stage == "val", rank_zero_only=True)
        if not self.trainer.sanity_checking:
            self.pending_media[f"{stage}/roc"] = roc_image(v_scores, v_labels, f"{stage} ROC (video level)")
            self.pending_media[f"{stage}/confusion"] = confusion_image(v_scores, v_labels, f"{stage} (video level)")

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.lr_schedule == "constant":
            return opt
        if self.hparams.lr_schedule != "cosine":
            raise ValueError(f"lr_schedule must be constant or cosine, not {self.hparams.lr_schedule!r}")
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @torch.no_grad()
    def visualize(self, batch: dict[str, Any], stage: str, rows: int = 4) -> dict[str, torch.Tensor]:
        """First frame of a few clips side by side, framed green (real) or red (fake): ``[3, H+6, n(W+6)]``."""
        frames = batch["video"][:rows, 0].float().cpu()
        colours = torch.tensor([[0.0, 0.8, 0.0], [0.9, 0.0, 0.0]])[batch["label"][:rows].cpu()]
        h, w = frames.shape[-2:]
        canvas = colours.view(-1, 3, 1, 1).expand(-1, 3, h + 6, w + 6).clone()
        canvas[..., 3:-3, 3:-3] = frames
        return {f"{stage}/clips": torch.cat(list(canvas), dim=2)}
