"""``forgelab bench-web``: upload -> verdict time over HTTP (vs ``forgelab detect`` in the same run) and many uploads
at once."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.commands.args import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab bench-web``."""
    p = sub.add_parser("bench-web", help="the web server: upload -> verdict time vs the CLI, many uploads at once")
    p.add_argument("--checkpoint", type=Path, nargs="+", default=None, help="detectors (default: as forgelab serve)")
    p.add_argument("--uploads", type=positive_int, default=20, help="uploads sent at once")
    p.add_argument("--workers", type=positive_int, default=1, help="the server's worker pool")
    p.add_argument("--out", type=Path, default=Path("outputs/bench_web.json"))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import json

    from web.benchmark import run
    from web.models import default_checkpoints, load_models

    checkpoints = list(args.checkpoint or default_checkpoints())
    models = load_models(checkpoints, "cpu", swap=False)
    res = run(models, [str(c) for c in checkpoints], args.out, args.uploads, args.workers)
    print(json.dumps(res, indent=1))
    print(f"bench-web: wrote {args.out}")
    return 0
