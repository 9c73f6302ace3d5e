"""``structlm show``: a picture of a saved plan (segment-level mask, token-level mask when small, positions)."""
from __future__ import annotations

import argparse


def _run_show(args: argparse.Namespace) -> int:
    from structlm.cli.inputs import read_text
    from structlm.plan import Plan
    from structlm.viz import show_plan

    plan = Plan.from_json(read_text(args.plan))
    print(repr(plan))
    print(plan.describe(max_segments=args.segments))
    show_plan(plan, args.out, max_tokens=args.max_tokens, title=args.title)
    print(f"wrote {args.out}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "show",
        help="draw a saved plan: segment-level mask, token-level mask when small, positions",
        description="Read a plan written by 'structlm plan ... -o FILE' (or Plan.to_json()) and draw it: who sees "
        "whom per segment (with each segment's own rule on the diagonal), the token mask when the plan has at most "
        "--max-tokens tokens, and position id against token index.",
    )
    parser.add_argument("plan", metavar="PLAN.json", help="a plan saved as JSON")
    parser.add_argument("-o", "--out", default="plan.png", metavar="FILE", help="the picture to write (default plan.png)")
    parser.add_argument("--max-tokens", type=int, default=512, help="draw the token mask up to this many tokens")
    parser.add_argument("--title", help="title above the picture (default: the plan's summary)")
    parser.add_argument("--segments", type=int, default=20, metavar="N", help="segments to describe")
    parser.set_defaults(func=_run_show)
