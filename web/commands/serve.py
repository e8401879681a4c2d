"""``forgelab serve``: the web page and REST API (FastAPI on uvicorn); models loaded once, jobs in a worker pool."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.commands.args import fraction, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab serve``."""
    p = sub.add_parser("serve", help="web page + REST API: upload a video, get a verdict; make a part swap")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=positive_int, default=8000)
    p.add_argument("--checkpoint", type=Path, nargs="+", default=None,
                   help="detector files (default: the newest sample run and MesoNet's Deepfake weights)")  # fmt: skip
    p.add_argument("--segmenter", type=Path, default=None,
                   help="part-swap model (default: a published one in pretrained/, else the sample run)")  # fmt: skip
    p.add_argument("--no-swap", action="store_true", help="serve detection only")
    p.add_argument("--max-upload-mb", type=positive_int, default=200, help="largest upload (413 beyond)")
    p.add_argument("--max-seconds", type=positive_int, default=600, help="longest video accepted")
    p.add_argument("--ttl-minutes", type=float, default=60.0, help="jobs and their files are deleted after this")
    p.add_argument("--workers", type=positive_int, default=1, help="jobs run at once")
    p.add_argument("--queue", type=positive_int, default=32, help="jobs waiting or running at most (503 beyond)")
    p.add_argument("--threshold", type=fraction, default=0.5)
    p.add_argument("--band", type=fraction, default=0.1)
    p.add_argument("--min-face-share", type=fraction, default=0.5)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from detection.predict import VerdictRules
    from web.app import Settings, create_app
    from web.models import load_models

    models = load_models(args.checkpoint, args.device, args.segmenter, swap=not args.no_swap)
    settings = Settings(max_upload_bytes=args.max_upload_mb * 1024 * 1024, max_seconds=args.max_seconds,
                        ttl=args.ttl_minutes * 60, workers=args.workers, queue=args.queue,
                        rules=VerdictRules(args.threshold, args.band, args.min_face_share))  # fmt: skip
    app = create_app(models, settings)
    for d in models.detectors:
        print(f"serve: detector {d.detector.module.describe()['name']} ({d.detector.path})")
    print(f"serve: part swap: {models.segmenter_source or 'off'}; http://{args.host}:{args.port}/ (API docs: /docs)",
          flush=True)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
