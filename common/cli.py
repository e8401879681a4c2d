"""The training command line behind ``forgelab fit|validate|test`` (several ``--config`` merge in order).

A thin :class:`~lightning.pytorch.cli.LightningCLI` whose YAML mirrors constructors (``class_path`` /
``init_args``). It adds a ``run`` section (experiment name, W&B project/entity/tags, output folder,
precision) and builds the loggers and the media callback itself, so every experiment logs the same
way. Accelerator and devices default to ``auto``: a GPU (several: DDP) when present, else the CPU.
``precision: auto`` means bf16-mixed on a GPU that supports it, 32-bit otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from common.loggers import LogRunConfig, MediaCallback, build_loggers, run_dir


@dataclass
class RunOptions:
    """The ``run:`` section of an experiment.

    Attributes:
        name: experiment / run name.
        project: W&B project.
        entity: W&B entity (team or user); ``None`` = the logged-in user's default.
        tags: W&B tags.
        save_dir: root folder of run outputs (logs, checkpoints, media).
        wandb: log to W&B (offline unless logged in).
        precision: ``auto`` or any Lightning precision string.
        media_every_n_steps: how often the media callback asks the system for pictures.
    """

    name: str = "run"
    project: str = "forgelab"
    entity: str | None = None
    tags: list[str] = field(default_factory=list)
    save_dir: str = "outputs/runs"
    wandb: bool = True
    precision: str = "auto"
    media_every_n_steps: int = 200


def auto_precision() -> str:
    """bf16-mixed on a bf16-capable GPU, else 32-true."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


class ForgelabCLI(LightningCLI):
    """LightningCLI with forgelab's loggers, media callback and run metadata."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_callback", LogRunConfig)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(RunOptions, "run")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        run: RunOptions = self._get(self.config_init, "run")
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        if trainer_cfg.get("logger") in (None, True):
            kwargs["logger"] = build_loggers(run.save_dir, run.name, run.project, run.entity, run.tags, run.wandb)
        if trainer_cfg.get("precision") is None:
            kwargs["precision"] = auto_precision() if run.precision == "auto" else run.precision
        if not trainer_cfg.get("default_root_dir"):
            kwargs["default_root_dir"] = f"{run.save_dir}/{run.name}"
        callbacks = list(trainer_cfg.get("callbacks") or [])
        if not any(isinstance(c, MediaCallback) for c in callbacks):
            callbacks.append(MediaCallback(every_n_steps=run.media_every_n_steps))
        kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)

    def after_fit(self) -> None:
        """Tell the user where the run's outputs are."""
        if not self.trainer.is_global_zero:
            return
        print(run_summary(self.trainer))


def run_summary(trainer: Trainer) -> str:
    """Where the checkpoints, logs, media and W&B run of a finished fit are."""
    from lightning.pytorch.loggers import WandbLogger

    lines = [f"run folder: {run_dir(trainer)}"]
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and getattr(ckpt, "dirpath", None):
        best = getattr(ckpt, "best_model_path", "") or "(none)"
        lines.append(f"checkpoints: {ckpt.dirpath} (best: {best})")
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            exp = logger.experiment
            where = getattr(exp, "url", None) or getattr(exp, "dir", "")
            lines.append(f"W&B run: {where}")
            if getattr(exp, "offline", False) or str(getattr(exp.settings, "mode", "")) == "offline":
                lines.append(f"  offline: publish with `wandb sync {Path(exp.dir).parent}`")
    return "\n".join(lines)


def run_cli(args: Sequence[str]) -> ForgelabCLI:
    """Run the training CLI with explicit arguments (``["fit", "--config", ...]``)."""
    with warnings.catch_warnings():  # the console script also has them in sys.argv, which LightningCLI warns about
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return ForgelabCLI(args=list(args))
