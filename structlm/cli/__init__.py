"""The ``structlm`` command.

Each subcommand lives in its own module here, ``structlm/cli/<name>.py``, with a ``register(subparsers)``
function; ``COMMANDS`` lists them in help order. Modules import torch and models only inside their run
functions, so ``structlm --help`` starts fast. Every subcommand has ``--help``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

# Add a subcommand: write structlm/cli/<name>.py with register(subparsers), then list its name here.
COMMANDS: list[str] = ["demo", "plan", "rag", "graph", "stream", "probe"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="structlm", description="Structure-aware inputs for Hugging Face models.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"structlm.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # torch's OpenMP threads spin-wait by default, which makes small ops many times slower on shared CPUs;
    # the command sets the passive policy before anything imports torch (an explicit setting wins).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, ImportError) as error:  # PlanError, cache and parse errors are ValueErrors
        print(f"structlm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
