"""``structlm rag``: parallel-encoded RAG (APE) and Graph-KV plans, answered on a model."""
from __future__ import annotations

import argparse


def _run_rag(args: argparse.Namespace) -> int:
    """Build a RAG plan, print it, and answer the question on a model (a tiny random Llama when offline)."""
    from structlm import rag
    from structlm.hf import APE, StructuredLM

    contexts = list(args.context or [])
    query, prefix = args.query, args.prefix
    if args.contexts:
        from structlm.cli.inputs import read_contexts

        read, file_query, file_prefix = read_contexts(args.contexts)
        contexts += read
        query = query or file_query
        prefix = prefix if prefix is not None else file_prefix
    contexts = contexts or [
        "the amazon river carries more water than any other river",
        "lake baikal is the deepest lake in the world",
        "mount kilimanjaro is the highest mountain in africa",
    ]
    query = query or "which lake is the deepest"
    args.prefix = prefix if prefix is not None else "answer from the documents"
    if args.model:
        lm = StructuredLM.from_pretrained(args.model)
        tokenizer = lm.tokenizer
    else:
        from structlm.testing import demo_tokenizer, tiny_llama

        tokenizer = demo_tokenizer(contexts + [query, args.prefix])
        lm = StructuredLM(tiny_llama(len(tokenizer)), tokenizer=tokenizer)
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


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "rag",
        help="parallel-encoded RAG (APE) and Graph-KV plans: print the layout and answer a question",
        description="Build a RAG plan from contexts and a question, print its positions and visibility, and "
        "generate an answer. Offline (no --model) it runs a tiny random Llama with a word tokenizer, so the "
        "answer is noise: the layout and the cache counters are the point.",
    )
    parser.add_argument("--context", action="append", metavar="TEXT", help="a retrieved context (repeat the flag)")
    parser.add_argument("--contexts", metavar="FILE", help="contexts from a JSON, JSONL or text file (as in "
                        "'structlm plan rag'); its question and prefix are used unless --query / --prefix are given")
    parser.add_argument("--query", help="the question (default: the file's, else 'which lake is the deepest')")
    parser.add_argument("--prefix", help="shared prefix / instruction (default: 'answer from the documents')")
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
