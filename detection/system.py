"""``DetectionSystem``: any :class:`~detection.models.Detector` trained and evaluated as a LightningModule.

Cross-entropy on 2 logits (index 1 = fake), Adam (lr 1e-5, weight decay 1e-3 by default, the seed report's
recipe). Validation and test run the one evaluation routine (:mod:`detection.evaluation`): ACC, AUC, AP
and EER on clip scores p(fake) and on video scores (clips aggregated by ``mean``, ``max`` or the DFDC
``confident`` rule), the video-level ROC curve and confusion matrix as images; the experiments keep the
checkpoint with the best **validation** AUC. Every rank computes the same metrics from the gathered scores
and logs them, so a ModelCheckpoint can monitor them under DDP.

The detector is chosen in the experiment YAML by ``class_path``; its configuration is stored in the
checkpoint (``hparams["detector"]``) together with the input spec the fit recorded (crop size and margin,
frames and stride of the data module, aggregation), so ``DetectionSystem.load_from_checkpoint(path)``,
``detect`` and ``evaluate`` rebuild it with no other argument. Pretrained (ImageNet) weights only seed a
fresh fit: loading a trained checkpoint never needs them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F

from detection.evaluation import ClipScores, readable, report_images, summarise, with_failures
from detection.metrics import DEFAULT_THRESHOLD
from detection.models import Detector, InputSpec, build_detector
from detection.models.base import SPEC_KEY


class DetectionSystem(pl.LightningModule):
    """Video-level real/fake classifier around one detector.

    Args:
        detector: any :class:`Detector` (``class_path`` / ``init_args`` in YAML).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        lr_schedule: ``"constant"`` (the recipe) or ``"cosine"`` decay to 0 over the run (settles
            BatchNorm statistics, hence calibration, when training from scratch at a high rate).
        aggregation: clip -> video score rule (``mean``, ``max``, ``confident``), stored in the input spec.
        threshold: p(fake) above which a clip or video counts as fake in accuracy and confusion matrices.
        channels_last: channels-last convolutions; ``None`` = on GPU only.
    """

    def __init__(
        self,
        detector: Detector,
        lr: float = 1e-5,
        weight_decay: float = 1e-3,
        lr_schedule: Literal["constant", "cosine"] = "constant",
        aggregation: Literal["mean", "max", "confident"] = "mean",
        threshold: float = DEFAULT_THRESHOLD,
        channels_last: bool | None = None,
    ) -> None:
        super().__init__()
        if isinstance(detector, Mapping):  # load_from_checkpoint: the stored configuration
            detector = build_detector(dict(detector))
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be constant or cosine, not {lr_schedule!r}")
        self.save_hyperparameters(ignore=["detector"])
        self.hparams.pop("_instantiator", None)  # always rebuilt through build_detector (known classes only)
        self.hparams["detector"] = detector.config()
        self.detector = detector
        self.detector.input_spec = detector.input_spec.replace(aggregation=aggregation)
        self.pending_media: dict[str, torch.Tensor] = {}
        self._scores: dict[str, ClipScores] = {"val": ClipScores(), "test": ClipScores()}

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``video [B, T, 3, H, W]`` RGB [0, 1] -> logits ``[B, 2]``."""
        return self.detector(video)

    def setup(self, stage: str) -> None:
        use = self.hparams.channels_last
        if use or (use is None and self.trainer.strategy.root_device.type == "cuda"):
            self.detector.to_channels_last()
        if stage == "fit":
            self.detector.init_pretrained()  # a resumed fit then restores its checkpoint over these
        dm = self.trainer.datamodule
        if dm is not None and getattr(dm, "mode", "clip") == "clip":
            spec = self.detector.input_spec
            self.detector.input_spec = spec.replace(
                size=spec.size if self.detector.fixed_size else int(dm.size), margin=float(dm.margin),
                square=bool(getattr(dm, "square", True)), resize=getattr(dm, "resample", spec.resize),
                frames=int(dm.clip_len), stride=int(dm.frame_stride),
            )  # fmt: skip

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[SPEC_KEY] = self.detector.input_spec.to_dict()  # what detect / evaluate feed the detector

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if SPEC_KEY in checkpoint:
            self.detector.input_spec = InputSpec.from_dict(checkpoint[SPEC_KEY])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch["video"])
        loss = F.cross_entropy(logits, batch["label"])
        acc = (logits.argmax(1) == batch["label"]).float().mean()
        self.log_dict({"train/loss": loss, "train/acc": acc}, prog_bar=True, batch_size=len(logits))
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        ok = readable(batch)
        n = len(batch["label"])
        logits = self(batch["video"][ok]) if ok else None
        # the loss of the scores reported: clips that could not be read score 0.5, i.e. cost log 2 each
        total = F.cross_entropy(logits, batch["label"][ok], reduction="sum") if logits is not None else 0.0
        loss = (total + (n - len(ok)) * math.log(2)) / n
        self.log(f"{stage}/loss", torch.as_tensor(loss, device=self.device, dtype=torch.float32), batch_size=n,
                 sync_dist=True)  # fmt: skip
        self._scores[stage].add(with_failures(n, ok, logits), batch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _gathered(self, stage: str) -> ClipScores:
        rows = self._scores[stage].rows()
        self._scores[stage] = ClipScores()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(parts, rows)
            rows = [r for part in parts for r in part]
        return ClipScores.from_rows(rows)

    def _epoch_end(self, stage: str) -> None:
        clips = self._gathered(stage)
        if not len(clips):
            return
        aggregation, threshold = self.detector.input_spec.aggregation, self.hparams.threshold
        report = summarise(clips, aggregation, threshold)
        metrics = {f"{stage}/clip_{k}": report["clip_level"][k] for k in ("acc", "auc", "ap", "eer")}
        metrics.update({f"{stage}/video_{k}": report["video_level"][k] for k in ("acc", "auc", "ap", "eer")})
        metrics[f"{stage}/failed_videos"] = float(report["n_failed"])
        # identical on every rank (gathered scores) and logged on every rank, so checkpoint monitors work under DDP
        self.log_dict(metrics, prog_bar=stage == "val", sync_dist=True)
        if not self.trainer.sanity_checking:
            for name, image in report_images(clips, aggregation, threshold).items():
                self.pending_media[f"{stage}/{name}"] = image

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.lr_schedule == "constant":
            return opt
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
