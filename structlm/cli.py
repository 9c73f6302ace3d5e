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


def _run_rag(args: argparse.Namespace) -> int:
    """Build a RAG plan, print it, and answer the question on a model (a tiny random Llama when offline)."""
    import torch

    from structlm import rag
    from structlm.hf import StructuredLM
    from structlm.hf.attention import APE

    contexts = args.context or [
        "the amazon river carries more water than any other river",
        "lake baikal is the deepest lake in the world",
        "mount kilimanjaro is the highest mountain in africa",
    ]
    query = args.query
    if args.model:
        lm = StructuredLM.from_pretrained(args.model)
        tokenizer = lm.tokenizer
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        tokenizer = rag.demo_tokenizer(contexts + [query, args.prefix])
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                             bos_token_id=1, eos_token_id=2, pad_token_id=0)
        torch.manual_seed(0)
        lm = StructuredLM(LlamaForCausalLM._from_config(config).eval(), tokenizer=tokenizer)
    if args.layout == "parallel":
        plan = rag.parallel(tokenizer, contexts, query, prefix=args.prefix)
    elif args.layout == "sequential":
        plan = rag.sequential(tokenizer, contexts, query, prefix=args.prefix)
    else:
        top_m = "full" if args.layout == "graph-kv-full" else 1
        plan = rag.graph_kv_rag(tokenizer, contexts, query, top_m=top_m, prefix=args.prefix)
    print(repr(plan))
    print(plan.describe())
    if args.mask:
        print(plan.mask_string())
    attention = None
    if args.layout == "parallel" and not args.no_ape:
        attention = APE(temperature=args.temperature, scale=args.scale, convention=args.convention)
    tokens = lm.generate(plan, max_new_tokens=args.max_new_tokens, attention=attention,
                         eos_token_id=tokenizer.eos_token_id)
    label = f"APE(T={args.temperature}, S={args.scale}, {args.convention})" if attention else "plain attention"
    print(f"answer ({label}{'' if args.model else ', random tiny model'}): "
          f"{tokenizer.decode(tokens[0], skip_special_tokens=True)!r}")
    print(f"cache: {lm.cache}")
    return 0


def register_rag(subparsers) -> None:
    parser = subparsers.add_parser(
        "rag",
        help="parallel-encoded RAG (APE) and Graph-KV plans: print the layout and answer a question",
        description="Build a RAG plan from contexts and a question, print its positions and visibility, and "
        "generate an answer. Offline (no --model) it runs a tiny random Llama with a word tokenizer, so the "
        "answer is noise: the layout and the cache counters are the point.",
    )
    parser.add_argument("--context", action="append", metavar="TEXT", help="a retrieved context (repeat the flag)")
    parser.add_argument("--query", default="which lake is the deepest", help="the question")
    parser.add_argument("--prefix", default="answer from the documents", help="shared prefix / instruction")
    parser.add_argument("--layout", choices=["parallel", "sequential", "graph-kv-top1", "graph-kv-full"],
                        default="parallel")
    parser.add_argument("--model", help="a Hugging Face decoder (hub id or local path)")
    parser.add_argument("--temperature", type=float, default=0.9, help="APE temperature T (parallel layout)")
    parser.add_argument("--scale", type=float, default=0.9, help="APE scale S (parallel layout)")
    parser.add_argument("--convention", choices=["repo", "paper"], default="repo",
                        help="repo: context LSE times S*T (official APE code); paper: times S")
    parser.add_argument("--no-ape", action="store_true", help="plain attention over the parallel layout")
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--mask", action="store_true", help="print the token-level mask as text")
    parser.set_defaults(func=_run_rag)


# Front-ends append their register functions here.
REGISTRARS: list[Callable] = [register_plan, register_rag]


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
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, ImportError) as error:  # PlanError, cache and parse errors are ValueErrors
        print(f"structlm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
