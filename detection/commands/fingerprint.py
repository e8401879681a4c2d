"""``forgelab fingerprint``: convolutional-trace fingerprints (seed 002) of a dataset, k-NN / SVM / LDA fitted and
evaluated, every fitted detector saved for ``detect`` / ``evaluate``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common.commands.args import add_frame_data_arguments, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab fingerprint``."""
    p = sub.add_parser("fingerprint", help="convolutional-trace fingerprints + k-NN / SVM / LDA, fitted and evaluated")
    add_frame_data_arguments(p, size=128, train_clips=16, clips=8)
    p.add_argument("--kernels", type=positive_int, nargs="+", default=[3], help="EM kernel sides (3, 4, 5)")
    p.add_argument("--grid", type=positive_int, default=1, help="fingerprints per crop: grid x grid tiles")
    p.add_argument("--classifiers", nargs="+", default=["knn", "svm", "lda"], choices=["knn", "svm", "lda"])
    p.add_argument("--neighbours", type=positive_int, default=5, help="k of the k-NN classifier")
    p.add_argument("--iterations", type=positive_int, default=50, help="EM iterations at most")
    p.add_argument("--out", type=Path, default=Path("outputs/fingerprint"))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from common.commands.args import frame_data, frame_data_settings
    from common.outputs import output_dir
    from detection.fingerprint import cached_splits, evaluate, write_leaderboard
    from detection.models.base import FIT_SECONDS_KEY
    from detection.models.conv_traces import ConvTraceDetector

    out = output_dir(args.out)  # checked before any work
    dm = frame_data(args)
    rows = []
    for kernel in args.kernels:

        def make(classifier: str = "knn", k: int = kernel) -> ConvTraceDetector:
            return ConvTraceDetector(k, classifier, args.neighbours, args.iterations, args.size, args.margin, args.grid)

        settings = {"kernel": kernel, "iterations": args.iterations, "grid": args.grid,
                    **frame_data_settings(args, dm.dataset_hash)}  # fmt: skip
        train, held = cached_splits(
            dm, make().frame_features, out, f"fingerprints_k{kernel}", settings, args.eval_split
        )
        for name in args.classifiers:
            detector = make(name)
            start = time.perf_counter()
            detector.fit(train.features, train.labels)
            fit_seconds = train.seconds + time.perf_counter() - start  # the training fingerprints' EM + the fit
            report = evaluate(detector.p_fake_frames, held)
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
