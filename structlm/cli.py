"""The ``structlm`` command.

Each front-end contributes one subcommand through a ``register_<name>(subparsers)`` function below;
``main`` wires them all. Every subcommand has ``--help``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence


def _demo_plan():
    """A small plan that shows every feature of the core: prefix, parallel contexts, a query seeing all."""
    from structlm.plan import Plan, Segment

    plan = Plan()
    plan.add(Segment("prefix", input_ids=[1, 2, 3, 4], role="prefix"))
    for i, ids in enumerate(([10, 11, 12], [20, 21, 22, 23, 24], [30, 31])):
        plan.add(Segment(f"context{i}", input_ids=ids, start=4, role="context"), sees=["prefix"])
    plan.add(Segment("query", input_ids=[40, 41], start=9, role="query"), sees=["prefix", "context0", "context1", "context2"])
    return plan


def _run_plan(args: argparse.Namespace) -> int:
    from structlm.plan import Plan

    if args.json:
        with open(args.json, encoding="utf-8") as handle:
            plan = Plan.from_json(handle.read())
    else:
        plan = _demo_plan()
    print(repr(plan))
    print(plan.describe())
    if args.mask:
        print(plan.mask_string())
    if args.save:
        with open(args.save, "w", encoding="utf-8") as handle:
            handle.write(plan.to_json())
        print(f"wrote {args.save}")
    if args.png:
        from structlm.viz import show_plan

        show_plan(plan, args.png)
        print(f"wrote {args.png}")
    return 0


def register_plan(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="build (or load) a plan and print its segments, positions and mask",
        description="Print a plan: its segments, spans, positions, visibility, and the token mask. "
        "Without --json it builds a small demo plan (a prefix, three parallel contexts, a query).",
    )
    parser.add_argument("--json", metavar="FILE", help="load a plan saved with Plan.to_json()")
    parser.add_argument("--save", metavar="FILE", help="write the plan as JSON")
    parser.add_argument("--mask", action="store_true", help="print the token-level mask as text")
    parser.add_argument("--png", metavar="FILE", help="write a picture of the plan (needs matplotlib)")
    parser.set_defaults(func=_run_plan)


# Front-ends append their register functions here.
REGISTRARS: list[Callable] = [register_plan]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="structlm", description="Structure-aware inputs for Hugging Face models.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
