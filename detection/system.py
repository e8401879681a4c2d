"""``DetectionSystem``: any :class:`~detection.models.Detector` trained and evaluated as a LightningModule.

Cross-entropy on 2 logits (index 1 = fake), Adam (lr 1e-5, weight decay 1e-3 by default, the seed report's
recipe) or SGD with momentum and a step schedule (the long-distance attention paper's). Validation and test
run the one evaluation routine (:mod:`detection.evaluation`): ACC, AUC, AP and EER on clip scores p(fake) and
on video scores (clips aggregated by ``mean``, ``max`` or the DFDC ``confident`` rule), the video-level ROC
curve and confusion matrix as images; the experiments keep the checkpoint with the best **validation** AUC.
Every rank computes the same metrics from the gathered scores and logs them, so a ModelCheckpoint can monitor
them under DDP.

The detector is chosen in the experiment YAML by ``class_path``; its configuration is stored in the
checkpoint (``hparams["detector"]``) together with the input spec the fit recorded (crop size and margin,
frames and stride of the data module, aggregation), so ``DetectionSystem.load_from_checkpoint(path)``,
``detect`` and ``evaluate`` rebuild it with no other argument. Pretrained (ImageNet) weights only seed a
fresh fit: loading a trained checkpoint never needs them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F

from detection.evaluation import ClipScores, readable, report_images, summarise, with_failures
from detection.metrics import DEFAULT_THRESHOLD
from detection.models import Detector, InputSpec, build_detector
from detection.models.base import FIT_SECONDS_KEY, SPEC_KEY


class DetectionSystem(pl.LightningModule):
    """Video-level real/fake classifier around one detector.

    Args:
        detector: any :class:`Detector` (``class_path`` / ``init_args`` in YAML).
        lr: learning rate.
        weight_decay: weight decay.
        lr_schedule: ``"constant"`` (the recipe), ``"cosine"`` decay to 0 over the run (settles BatchNorm
            statistics, hence calibration, when training from scratch at a high rate) or ``"step"`` (multiplied
            by ``gamma`` every ``step_size`` epochs: the long-distance attention paper's StepLR(5, 0.5)).
        optimizer: ``"adam"`` (the ResNeXt-LSTM recipe) or ``"sgd"`` with ``momentum`` (the long-distance
            attention paper's: lr 3e-4, momentum 0.9).
        momentum: SGD momentum.
        step_size: epochs between two decays of the ``step`` schedule.
        gamma: factor of each ``step`` decay.
        aggregation: clip -> video score rule (``mean``, ``max``, ``confident``), stored in the input spec.
        threshold: p(fake) above which a clip or video counts as fake in accuracy and confusion matrices.
        channels_last: channels-last convolutions; ``None`` = on GPU only.
    """

    def __init__(
        self,
        detector: Detector,
        lr: float = 1e-5,
        weight_decay: float = 1e-3,
        lr_schedule: Literal["constant", "cosine", "step"] = "constant",
        optimizer: Literal["adam", "sgd"] = "adam",
        momentum: float = 0.9,
        step_size: int = 5,
        gamma: float = 0.5,
        aggregation: Literal["mean", "max", "confident"] = "mean",
        threshold: float = DEFAULT_THRESHOLD,
        channels_last: bool | None = None,
    ) -> None:
        super().__init__()
        if isinstance(detector, Mapping):  # load_from_checkpoint: the stored configuration
            detector = build_detector(dict(detector))
        if lr_schedule not in ("constant", "cosine", "step"):
            raise ValueError(f"lr_schedule must be constant, cosine or step, not {lr_schedule!r}")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be adam or sgd, not {optimizer!r}")
        self.save_hyperparameters(ignore=["detector"])
        self.hparams.pop("_instantiator", None)  # always rebuilt through build_detector (known classes only)
        self.hparams["detector"] = detector.config()
        self.detector = detector
        self.detector.input_spec = detector.input_spec.replace(aggregation=aggregation)
        self.pending_media: dict[str, torch.Tensor] = {}
        self._fit_before = 0.0  # fit time recorded by the checkpoint a fit resumes from
        self._fit_started: float | None = None
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

    def on_fit_start(self) -> None:
        self._fit_started = time.perf_counter()

    def fit_seconds(self) -> float:
        """Wall time of the fit so far (a resumed fit adds to the time its checkpoint recorded)."""
        running = time.perf_counter() - self._fit_started if self._fit_started is not None else 0.0
        return self._fit_before + running

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[SPEC_KEY] = self.detector.input_spec.to_dict()  # what detect / evaluate feed the detector
        checkpoint[FIT_SECONDS_KEY] = round(self.fit_seconds(), 2)  # for comparisons (forgelab compare)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if SPEC_KEY in checkpoint:
            self.detector.input_spec = InputSpec.from_dict(checkpoint[SPEC_KEY])
        self._fit_before = float(checkpoint.get(FIT_SECONDS_KEY) or 0.0)

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
        hp = self.hparams
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.lr_schedule == "constant":
            return opt
        if hp.lr_schedule == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=hp.step_size, gamma=hp.gamma)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
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
        media = {f"{stage}/clips": torch.cat(list(canvas), dim=2)}
        if self.detector.explains_itself:  # its attention maps over the first scored frame of each clip
            media.update(self.explanation_images(batch["video"][:rows]))
        return media

    def explanation_images(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: [3, H, n W]}``: each explanation of :meth:`Detector.explain` (e.g. spatial and temporal attention)
        blended over the first scored frame of each clip ``[n, T, 3, H, W]``."""
        from detection.cam import overlay

        was_training = self.detector.training
        self.detector.eval()
        rows: dict[str, list[torch.Tensor]] = {}
        for clip in clips:
            frame = (clip[0].float().permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")
            for name, heat in self.detector.explain(clip[None]).items():
                tile = torch.from_numpy(overlay(frame, heat[0])).permute(2, 0, 1).float() / 255
                rows.setdefault(name, []).append(tile)
        self.detector.train(was_training)
        return {f"attention/{name.replace(' ', '_')}": torch.cat(tiles, dim=2) for name, tiles in rows.items()}
