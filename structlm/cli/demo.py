"""``structlm demo``: the offline tour of every part."""
from __future__ import annotations

import argparse


def _run_demo(args: argparse.Namespace) -> int:
    from structlm.demo import run_demo

    run_demo(out=args.out, quick=args.quick)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="an offline tour: RAG on SmolLM2 from parallel-encoded documents, graph anchors, code probes, streams",
        description="Run every part of structlm offline and print one measured fact per step: SmolLM2-135M-Instruct "
        "answers from parallel-encoded documents (time to first token sequential / parallel / cached), NT-LLM "
        "anchors on the karate club, UniXcoder's AST and a short AST-Probe on MiniLM-L6, SmolLM2 copying a text "
        "while reading it. --quick uses tiny random models instead (seconds).",
    )
    parser.add_argument("--quick", action="store_true", help="tiny random models instead of the embedded ones")
    parser.add_argument("--out", metavar="DIR", help="also write the demo's pictures into DIR")
    parser.set_defaults(func=_run_demo)
