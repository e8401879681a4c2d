"""Experiment logging: the logger factory every experiment uses, run metadata and the media callback.

* :func:`build_loggers`: W&B (offline unless the user is logged in or sets ``WANDB_MODE``) plus CSV.
* :class:`LogRunConfig`: records the experiment YAML, the git commit and the dataset-index hash.
* :class:`MediaCallback`: the only place images and videos are logged. A system exposes
  ``visualize(batch, stage) -> {name: tensor}`` (called every ``every_n_steps`` training steps and on
  the first validation batch) and/or fills ``pending_media`` (e.g. a ROC curve at epoch end). Tensors
  ``[3, H, W]`` are images, ``[T, 3, H, W]`` videos, floats in [0, 1]. They go to W&B when it is a
  logger and always to files under ``<log_dir>/media/``.
"""

from __future__ import annotations

import netrc
import os
import subprocess
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from PIL import Image

from common.encode import write_video


def wandb_logged_in() -> bool:
    """Whether a W&B API key is configured (environment or ``~/.netrc``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return auth is not None


def wandb_offline() -> bool:
    """Offline unless ``WANDB_MODE=online`` or an API key is configured (``WANDB_MODE`` wins)."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if mode == "online":
        return False
    return not wandb_logged_in()


def build_loggers(
    save_dir: str = "outputs/runs",
    name: str = "run",
    project: str = "forgelab",
    entity: str | None = None,
    tags: list[str] | None = None,
    wandb: bool = True,
) -> list[Logger]:
    """The loggers of one training run: W&B (unless disabled) and CSV.

    Args:
        save_dir: root folder of run outputs.
        name: run name (the experiment name).
        project: W&B project.
        entity: W&B entity (team or user).
        tags: W&B tags.
        wandb: add the W&B logger.

    Returns:
        ``[CSVLogger, WandbLogger]`` (or just the CSV logger). Checkpoints, ``config.yaml`` and media
        files land in the CSV logger's ``<save_dir>/<name>/version_N`` folder.
    """
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    # CSV first: Lightning puts checkpoints and config.yaml in the first logger's folder
    loggers: list[Logger] = [CSVLogger(save_dir, name=name)]
    if wandb:
        loggers.append(
            WandbLogger(
                name=name,
                project=project,
                entity=entity,
                tags=list(tags or []),
                save_dir=save_dir,
                offline=wandb_offline(),
                log_model=False,
            )
        )
    return loggers


def git_commit(cwd: str | Path | None = None) -> str:
    """The current git commit (``+dirty`` when the tree has changes), or ``"unknown"``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def run_metadata(trainer: pl.Trainer, config_yaml: str) -> dict[str, Any]:
    """What every run records: the experiment YAML, git commit and dataset-index hash."""
    dm = trainer.datamodule  # already set up: Lightning runs the data module's setup before callbacks'
    return {
        "experiment_yaml": config_yaml,
        "config": yaml.safe_load(config_yaml) if config_yaml else {},
        "git_commit": git_commit(),
        "dataset_hash": getattr(dm, "dataset_hash", "") if dm is not None else "",
    }


class LogRunConfig(SaveConfigCallback):
    """Saves ``config.yaml`` to the log dir and logs the config, git commit and dataset hash to every logger."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        meta = run_metadata(trainer, self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams({k: v for k, v in meta.items() if k != "experiment_yaml"})
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update({"experiment_yaml": meta["experiment_yaml"]}, allow_val_change=True)
        folder = run_dir(trainer)  # never trainer.log_dir here: it broadcasts, and only rank 0 runs this
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "run_meta.yaml").write_text(yaml.safe_dump({k: meta[k] for k in ("git_commit", "dataset_hash")}))


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """float ``[3, H, W]`` or ``[T, 3, H, W]`` in [0, 1] -> uint8 ``[H, W, 3]`` / ``[T, H, W, 3]``."""
    a = (t.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    return a.permute(1, 2, 0).numpy() if a.ndim == 3 else a.permute(0, 2, 3, 1).numpy()


def run_dir(trainer: pl.Trainer) -> Path | None:
    """The run folder (the first logger's, as Lightning's ``trainer.log_dir``), read without a collective call:
    safe on one rank under DDP."""
    for logger in trainer.loggers:
        if logger.log_dir:
            return Path(logger.log_dir)
    return Path(trainer.default_root_dir) if trainer.default_root_dir else None


def media_dir(trainer: pl.Trainer) -> Path:
    """``<run folder>/media`` (the CSV logger's run folder when there is one)."""
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger):
            return Path(logger.log_dir) / "media"
    return (run_dir(trainer) or Path(".")) / "media"


def log_media(trainer: pl.Trainer, items: dict[str, torch.Tensor], fps: float = 4.0) -> list[Path]:
    """Log images/videos to W&B (when present) and write them to files; returns the files written."""
    if not items or not trainer.is_global_zero:
        return []
    step = trainer.global_step
    written: dict[str, Path] = {}
    root = media_dir(trainer)
    for key, t in items.items():
        a = to_uint8(t)
        folder = root / key.replace("/", "_")
        folder.mkdir(parents=True, exist_ok=True)
        if a.ndim == 3:
            path = folder / f"step{step:07d}.png"
            Image.fromarray(a).save(path)
        else:
            path = write_video(folder / f"step{step:07d}.mp4", list(a), fps)
        written[key] = path
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            payload = {
                k: wandb.Image(str(p)) if p.suffix == ".png" else wandb.Video(str(p), format="mp4")
                for k, p in written.items()
            }
            logger.experiment.log({**payload, "trainer/global_step": step})
    return list(written.values())


class MediaCallback(pl.Callback):
    """Logs what systems want shown: ``visualize(batch, stage)`` outputs and ``pending_media``.

    Args:
        every_n_steps: call ``visualize`` on a training batch this often (0 = never during training).
        fps: frame rate of logged videos.
    """

    def __init__(self, every_n_steps: int = 200, fps: float = 4.0) -> None:
        self.every_n_steps = every_n_steps
        self.fps = fps

    def _flush(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pending = getattr(pl_module, "pending_media", None)
        if pending:
            log_media(trainer, dict(pending), self.fps)
            pending.clear()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps and hasattr(pl_module, "visualize") and (step == 1 or step % self.every_n_steps == 0):
            with torch.no_grad():
                log_media(trainer, pl_module.visualize(batch, "train"), self.fps)
        self._flush(trainer, pl_module)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and not trainer.sanity_checking and hasattr(pl_module, "visualize"):
            with torch.no_grad():
                log_media(trainer, pl_module.visualize(batch, "val"), self.fps)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._flush(trainer, pl_module)
        elif getattr(pl_module, "pending_media", None):
            pl_module.pending_media.clear()
