"""``forgelab transfer``: MobileNet transfer learning (seed 004). A frozen MobileNet's bottleneck of every face crop
is computed once into a cache, a softmax layer is trained on the cache in seconds, evaluated on the held-out split
with the one evaluation routine, and saved as a checkpoint ``detect`` / ``evaluate`` / ``compare`` read."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common.commands.args import add_frame_data_arguments, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab transfer``."""
    p = sub.add_parser("transfer", help="MobileNet transfer learning: cached bottlenecks + a softmax layer")
    add_frame_data_arguments(p, size=224, train_clips=16, clips=8)
    p.add_argument("--backbone", default="mobilenetv1_100", help="timm model name (frozen)")
    p.add_argument("--bottleneck", default="pooled", choices=["pooled", "logits"],
                   help="pooled features, or the 1000 ImageNet logits as TensorFlow's retraining caches")  # fmt: skip
    p.add_argument("--random-weights", action="store_true",
                   help="keep the backbone's random weights (no ImageNet file): a baseline")  # fmt: skip
    p.add_argument("--steps", type=positive_int, default=300, help="full-batch steps of the softmax layer")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--out", type=Path, default=Path("outputs/transfer"))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import torch

    from common.commands.args import frame_data, frame_data_settings
    from common.outputs import output_dir
    from detection.fingerprint import cached_splits, evaluate
    from detection.loading import save_detector
    from detection.models.base import FIT_SECONDS_KEY
    from detection.models.transfer import MobileNetTransfer

    out = output_dir(args.out)  # checked before any work
    torch.manual_seed(args.seed)  # the random backbone of --random-weights
    detector = MobileNetTransfer(args.backbone, not args.random_weights, args.bottleneck, args.size, args.margin)
    detector.init_pretrained()  # a missing ImageNet file is an error before any crop is read
    detector.eval()
    dm = frame_data(args)
    weights = "random" if args.random_weights else "imagenet"
    settings = {"backbone": args.backbone, "bottleneck": args.bottleneck, "weights": weights,
                **frame_data_settings(args, dm.dataset_hash)}  # fmt: skip
    name = f"bottlenecks_{args.backbone}_{args.bottleneck}_{weights}"
    train, held = cached_splits(dm, detector.bottlenecks, out, name, settings, args.eval_split)
    start = time.perf_counter()
    losses = detector.fit_head(train.features, train.labels, steps=args.steps, lr=args.lr, seed=args.seed)
    head_seconds = time.perf_counter() - start
    report = evaluate(detector.p_fake_frames, held)
    extra = {"report": json.loads(json.dumps(report)), FIT_SECONDS_KEY: round(train.seconds + head_seconds, 2),
             "final_loss": losses[-1]}  # fmt: skip
    path = save_detector(detector, out / f"mobilenet_transfer_{args.backbone}_{weights}.pt", extra)
    clip = report["clip_level"]
    print(f"transfer: {len(train.labels)} bottlenecks ({len(train.labels) / max(train.seconds, 1e-9):.1f} crops/s), "
          f"softmax layer trained in {head_seconds:.2f} s (loss {losses[-1]:.4f}); {args.eval_split} clip AUC "
          f"{clip['auc']:.4f} ACC {clip['acc']:.4f} over {len(held.labels)} crops; saved {path}")  # fmt: skip
    return 0
