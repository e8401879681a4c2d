"""``forgelab fit|validate|test --config experiments/base/SYSTEM.yaml --config experiments/NAME.yaml [overrides]``:
train or evaluate a system (several ``--config`` merge in order; see :mod:`common.cli`)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``forgelab fit``, ``validate`` and ``test`` (arguments go to LightningCLI)."""
    for name in ("fit", "validate", "test"):
        p = sub.add_parser(
            name,
            add_help=False,
            help=f"{name} an experiment: --config experiments/base/SYSTEM.yaml --config experiments/NAME.yaml",
        )
        p.set_defaults(func=lambda a, n=name: _run(n, a.passthrough), passthrough=[])


def _run(subcommand: str, cli_args: list[str]) -> int:
    from common.cli import run_cli  # Lightning is imported only by the commands that train

    run_cli([subcommand, *cli_args])
    return 0
