"""The ``structlm`` command.

Each subcommand lives in its own module here, ``structlm/cli/<name>.py``, with a ``register(subparsers)``
function; ``COMMANDS`` lists them in help order. Modules import torch and models only inside their run
functions, so ``structlm --help`` starts fast. Every subcommand has ``--help``.

A user mistake ends in one line on stderr and exit status 2, never a traceback: argparse errors (an unknown
kind, a missing argument) go through :class:`OneLineParser`, and ``main`` turns the ValueError / OSError /
ImportError a run raises (a missing file, a malformed one, a package not installed) into one line.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

__all__ = ["COMMANDS", "OneLineParser", "build_parser", "main", "one_line"]

# Add a subcommand: write structlm/cli/<name>.py with register(subparsers), then list its name here.
COMMANDS: list[str] = ["demo", "plan", "show", "rag", "graph", "stream", "rank", "probe", "bench"]


def one_line(error: BaseException | str) -> str:
    """An error message folded onto one line (a multi-line message would read as a traceback)."""
    return " ".join(str(error).split()) or type(error).__name__


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``structlm plan: error: ... (see --help)``.

    Subparsers inherit the class, so every subcommand (and every ``plan`` kind) reports the same way.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="structlm", description="Structure-aware inputs for Hugging Face models.")
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
    except BrokenPipeError:  # `structlm plan ... | head`: the reader left; not an error of the input
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not raise again
        return 0
    except (ValueError, OSError, ImportError) as error:  # PlanError, cache and parse errors are ValueErrors
        print(f"structlm {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
