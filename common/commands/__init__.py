"""The ``forgelab`` command line: every command is a module ``<package>/commands/<name>.py`` with
``add_parser(sub)`` (arguments) and ``main(args) -> exit code`` (calls the library, prints), registered
through the ``forgelab.commands`` entry points, so ``common`` never imports ``detection`` or
``generation``. Bad input ends as one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import NoReturn

from common.commands.args import config_tokens
from common.errors import ForgelabError

USAGE_EXIT = 64  # a malformed command line (BSD's EX_USAGE); 2 means "no face found"


class Parser(argparse.ArgumentParser):
    """argparse with usage errors ending in :data:`USAGE_EXIT` instead of 2 (sub-parsers inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    parser = Parser(prog="forgelab", description="deepfake detection and generation lab")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for ep in sorted(entry_points(group="forgelab.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def return_freed_buffers(threshold: int = 4 << 20) -> bool:
    """Make glibc serve allocations of ``threshold`` bytes or more (decoded frames, batches) with their own
    memory maps, handed back to the system when freed. By default glibc raises that threshold after the
    first such free and then keeps freed frames in its heap, so peak memory of a video pass grew by a few
    hundred MB (measured: +250 MB over 40 1080p frames, +33 MB with this). Only the commands that stream
    whole videos frame by frame ask for it (``streams_frames``): it slows large tensor allocations, so
    training and benchmarks of models keep glibc's default. No-op where glibc is absent.

    Returns:
        whether the setting was applied.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_mmap_threshold = -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, threshold))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``forgelab`` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "config", None) and not hasattr(args, "passthrough"):  # option files of a plain command
        try:
            tokens = config_tokens(args.config)
        except ForgelabError as exc:
            parser.error(str(exc))
        rest = [a for i, a in enumerate(argv) if a != "--config" and (i == 0 or argv[i - 1] != "--config")]
        at = rest.index(args.command) + 1
        args, unknown = parser.parse_known_args([*rest[:at], *tokens, *rest[at:]])
    if getattr(args, "streams_frames", False):  # set by the commands that stream whole videos
        return_freed_buffers()
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
