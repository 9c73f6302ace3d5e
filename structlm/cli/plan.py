"""``structlm plan``: build or load a plan and print its segments, positions and mask."""
from __future__ import annotations

import argparse


def _run_plan(args: argparse.Namespace) -> int:
    from structlm.plan import Plan

    if args.json:
        with open(args.json, encoding="utf-8") as handle:
            plan = Plan.from_json(handle.read())
    else:
        from structlm.testing import example_plan

        plan = example_plan()
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


def register(subparsers) -> None:
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
