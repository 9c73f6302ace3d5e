"""``structlm plan``: build a plan from a structure (``plan KIND INPUT... -o plan.json``), or load one.

    structlm plan graph club.edges -o plan.json          # NT-LLM node tokens (or --mode ego / k-hop: Graph-KV)
    structlm plan code module.py --mode encoder-decoder  # UniXcoder's modes
    structlm plan rag docs.jsonl --question "..."        # APE parallel, sequential, Graph-KV
    structlm plan --json plan.json --mask                # load a saved plan (no kind: the demo plan)

Every kind prints the plan's summary (segments, spans, positions, what each sees) and writes it as JSON with
``-o``; ``structlm show plan.json`` draws it. The kinds live in :mod:`structlm.cli.plan_kinds`.
"""
from __future__ import annotations

import argparse


def _common(parser: argparse.ArgumentParser, kind: bool) -> None:
    """Options every kind shares. SUPPRESS defaults: a value given before or after the kind is kept."""
    quiet = argparse.SUPPRESS
    if kind:
        parser.add_argument("-o", "--out", "--save", dest="save", metavar="FILE", default=quiet,
                            help="write the plan as JSON (structlm show FILE draws it)")
        parser.add_argument("--tokenizer", metavar="NAME", default=quiet,
                            help="'words' (a word-level tokenizer built from the input, offline), 'minilm' (the "
                            "packaged MiniLM-L6 tokenizer, offline), or any Hugging Face id or folder")
    else:
        parser.add_argument("--json", metavar="FILE", default=quiet, help="load a plan saved with Plan.to_json()")
        parser.add_argument("-o", "--out", "--save", dest="save", metavar="FILE", default=quiet,
                            help="write the plan as JSON")
    parser.add_argument("--mask", action="store_true", default=quiet, help="print the token-level mask as text")
    parser.add_argument("--png", metavar="FILE", default=quiet, help="also write a picture of the plan")
    parser.add_argument("--segments", type=int, default=quiet, metavar="N",
                        help="segments to describe (default 40)")


def _option(args: argparse.Namespace, name: str, default=None):
    return getattr(args, name, default)


def _run_plan(args: argparse.Namespace) -> int:
    from structlm.plan import Plan

    notes: list[str] = []
    if _option(args, "kind"):
        from structlm.cli.plan_kinds import all_kinds

        args.tokenizer = _option(args, "tokenizer")
        plan, notes = all_kinds()[args.kind].build(args)
    elif _option(args, "json"):
        from structlm.cli.inputs import read_text

        plan = Plan.from_json(read_text(args.json))
    else:
        from structlm.testing import example_plan

        plan = example_plan()
        notes = ["the demo plan (a prefix, three parallel contexts, a query); give a KIND to build one: "
                 "structlm plan {graph,code,rag} --help"]
    print(repr(plan))
    for note in notes:
        print(note)
    print(plan.describe(max_segments=_option(args, "segments", 40)))
    if _option(args, "mask"):
        print(plan.mask_string())
    save = _option(args, "save")
    if save:
        from structlm.cli.inputs import write_atomically

        write_atomically(save, plan.to_json())
        print(f"wrote {save}")
    png = _option(args, "png")
    if png:
        from structlm.viz import show_plan

        show_plan(plan, png)
        print(f"wrote {png}")
    return 0


def register(subparsers) -> None:
    from structlm.cli.plan_kinds import all_kinds

    kinds = all_kinds()
    parser = subparsers.add_parser(
        "plan",
        help="build a plan from a graph, code or RAG contexts (KIND INPUT -o plan.json), or load one",
        description="Build a plan from a structure and print its segments, spans, positions and visibility: "
        f"structlm plan KIND INPUT... -o plan.json, KIND one of {', '.join(kinds)} (each has --help). Without a "
        "KIND it loads --json FILE, or shows a small demo plan.",
    )
    _common(parser, kind=False)
    choices = parser.add_subparsers(dest="kind", metavar="KIND")
    for entry in kinds.values():
        sub = choices.add_parser(entry.name, help=entry.help, description=entry.description)
        entry.arguments(sub)
        _common(sub, kind=True)
    parser.set_defaults(func=_run_plan)
