"""``structlm demo``: the offline tour of every part."""
from __future__ import annotations

import argparse


def _run_demo(args: argparse.Namespace) -> int:
    from structlm.demo import run_demo

    run_demo(out=args.out)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a short offline tour: plans, RAG parallel encoding with caching, graph anchors, code ASTs",
        description="Run every part of structlm on embedded defaults (tiny random model, karate-club graph, a "
        "standard-library function) and print one measured check per step.",
    )
    parser.add_argument("--out", metavar="DIR", help="also write a picture of the demo plan into DIR")
    parser.set_defaults(func=_run_demo)
