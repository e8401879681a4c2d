"""The ``forgelab`` command line: every command is a module ``<package>/commands/<name>.py`` with
``add_parser(sub)`` (arguments) and ``main(args) -> exit code`` (calls the library, prints), registered
through the ``forgelab.commands`` entry points, so ``common`` never imports ``detection`` or
``generation``. Bad input ends as one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from common.errors import ForgelabError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="forgelab", description="deepfake detection and generation lab")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for ep in sorted(entry_points(group="forgelab.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``forgelab`` console script."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if hasattr(args, "passthrough"):  # training commands hand their arguments to LightningCLI
        args.passthrough = unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args) or 0)
    except ForgelabError as exc:
        print(f"forgelab {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"forgelab {args.command}: interrupted", file=sys.stderr)
        return 130
