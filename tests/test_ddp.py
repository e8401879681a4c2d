"""Distributed training on the CPU: two processes (gloo) through validation and best-checkpoint selection.

Validation metrics are computed from the scores gathered from every rank and logged on every rank, so the
ModelCheckpoint that monitors them works under DDP (Lightning documents ``rank_zero_only=True`` as unusable
for monitored metrics).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from common.weights import read_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def test_two_process_fit_validates_and_keeps_the_best(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "forgelab"
    detector = "--model.init_args.detector.init_args."
    configs = ["--config", "experiments/base/detector.yaml", "--config", "experiments/detector_sample.yaml"]
    cmd = [str(exe), "fit", *configs,
           f"--run.save_dir={tmp_path}", "--run.wandb=false", "--trainer.accelerator=cpu", "--trainer.devices=2",
           "--trainer.strategy=ddp", "--trainer.max_epochs=2", "--trainer.limit_train_batches=2",
           "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false", "--trainer.log_every_n_steps=1",
           f"{detector}hidden_size=8", "--data.init_args.size=32", "--data.init_args.clip_len=2",
           "--data.init_args.eval_clips=4", "--data.init_args.batch_size=2", "--data.init_args.num_workers=0",
           "--data.init_args.cache_frames=windows:2", f"--data.init_args.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "world_size: 2" in proc.stderr or "MEMBER: 2/2" in proc.stderr  # really two processes
    run = next((tmp_path / "detector_sample").glob("version_*"))
    best = run / "checkpoints" / "best.ckpt"
    assert best.is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    state = read_checkpoint(best)
    callback = next(v for k, v in state["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert callback["monitor"] == "val/clip_auc" and torch.is_tensor(callback["best_model_score"])
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "val/clip_auc" in header and "val/video_auc" in header
