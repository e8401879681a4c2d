"""``forgelab fingerprint``: convolutional-trace fingerprints (seed 002) of a dataset, k-NN / SVM / LDA fitted and
evaluated, every fitted detector saved for ``detect`` / ``evaluate``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common.commands.args import add_dataset_arguments, image_size, index_from_args, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab fingerprint``."""
    p = sub.add_parser("fingerprint", help="convolutional-trace fingerprints + k-NN / SVM / LDA, fitted and evaluated")
    add_dataset_arguments(p)
    p.add_argument("--cache", type=Path, default=None, help="face-crop cache (default: detect faces on the fly)")
    p.add_argument("--self-blend", action="store_true", help="train and evaluate against self-blended pseudo-fakes")
    p.add_argument("--kernels", type=positive_int, nargs="+", default=[3], help="EM kernel sides (3, 4, 5)")
    p.add_argument("--classifiers", nargs="+", default=["knn", "svm", "lda"], choices=["knn", "svm", "lda"])
    p.add_argument("--neighbours", type=positive_int, default=5, help="k of the k-NN classifier")
    p.add_argument("--iterations", type=positive_int, default=50, help="EM iterations at most")
    p.add_argument("--size", type=image_size, default=128, help="face-crop side")
    p.add_argument("--margin", type=float, default=1.3, help="face-crop side / face-box side")
    p.add_argument("--train-clips", type=positive_int, default=16, help="training crops drawn per video")
    p.add_argument("--clips", type=positive_int, default=8, help="evaluation crops per video")
    p.add_argument("--eval-split", default="val", choices=["val", "test"])
    p.add_argument("--out", type=Path, default=Path("outputs/fingerprint"))
    # --seed (from the dataset arguments) also seeds the training crops and pseudo-fakes drawn
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import torch

    from common.data import VideoDataModule
    from common.outputs import output_dir
    from common.selfblend import SelfBlend
    from detection.fingerprint import cached, collect, evaluate, write_leaderboard
    from detection.models.base import FIT_SECONDS_KEY
    from detection.models.conv_traces import ConvTraceDetector

    out = output_dir(args.out)  # checked before any work
    torch.manual_seed(args.seed)  # the training crops and pseudo-fakes drawn: one seed, the same fingerprints
    dm = VideoDataModule(index_from_args(args), cache_dir=str(args.cache) if args.cache else None, clip_len=1,
                         eval_clips=args.clips, size=args.size, margin=args.margin, batch_size=16, num_workers=0,
                         faces_on_the_fly=args.cache is None, repeats=args.train_clips, seed=args.seed,
                         self_blend=SelfBlend(paired=True) if args.self_blend else None)  # fmt: skip
    dm.setup("fit")
    rows = []
    for kernel in args.kernels:
        extractor = ConvTraceDetector(kernel, iterations=args.iterations, size=args.size, margin=args.margin)
        settings = {"kernel": kernel, "iterations": args.iterations, "size": args.size, "margin": args.margin,
                    "dataset": dm.dataset_hash, "train_clips": args.train_clips, "clips": args.clips,
                    "self_blend": args.self_blend, "seed": args.seed, "eval_split": args.eval_split}  # fmt: skip

        def extract(split: str, e: ConvTraceDetector = extractor, k: int = kernel):  # noqa: ANN202
            return lambda: collect(e, dm.dataloader(split), f"fingerprints {k}x{k} {split}")

        train = cached(out / f"fingerprints_k{kernel}_train.pt", settings, extract("train"))
        held = cached(out / f"fingerprints_k{kernel}_{args.eval_split}.pt", settings, extract(args.eval_split))
        for name in args.classifiers:
            detector = ConvTraceDetector(kernel, name, args.neighbours, args.iterations, args.size, args.margin)
            start = time.perf_counter()
            detector.fit(train.features, train.labels)
            fit_seconds = train.seconds + time.perf_counter() - start  # the training fingerprints' EM + the fit
            report = evaluate(detector, held)
            extra = {"report": json.loads(json.dumps(report)), FIT_SECONDS_KEY: round(fit_seconds, 2)}
            path = detector.save(out / f"conv_traces_k{kernel}_{name}.pt", extra)
            rows.append({"kernel": kernel, "classifier": name, "file": str(path), "split": args.eval_split,
                         "train_fingerprints": len(train.labels), "eval_fingerprints": len(held.labels),
                         "crops_per_s": round(len(train.labels) / max(train.seconds, 1e-9), 2),
                         "clip_auc": report["clip_level"]["auc"], "clip_acc": report["clip_level"]["acc"],
                         "video_auc": report["video_level"]["auc"], "n_failed": report["n_failed"]})  # fmt: skip
            print(
                f"fingerprint: {kernel}x{kernel} {name.upper()}: {args.eval_split} clip AUC "
                f"{report['clip_level']['auc']:.4f} ACC {report['clip_level']['acc']:.4f}; saved {path}"
            )
    table = write_leaderboard(rows, out)
    print(f"fingerprint: wrote {table}")
    return 0
