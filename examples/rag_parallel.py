"""Parallel-encoded RAG with APE: contexts encoded once, cached, and reused by the next question.

    python examples/rag_parallel.py                                   # offline: tiny random Llama, word tokenizer
    python examples/rag_parallel.py --quick                           # four new tokens per answer
    python examples/rag_parallel.py --model meta-llama/Llama-3.1-8B-Instruct --temperature 0.9 --scale 0.9

Steps:
1. build the APE layout (`structlm.rag.ape`): the prefix at 0..P-1, every document at P..P+Lᵢ-1 seeing the
   prefix only, the question after the longest document seeing everything;
2. answer a question with APE attention (`structlm.hf.attention.APE`) — documents are encoded one by one and go
   into the runtime's SegmentCache;
3. ask a second question over the same documents: only the question is encoded (cache hits);
4. compare with the ordinary sequential prompt (`structlm.rag.sequential`).

With the offline tiny model the generated words are random — the point is the layout, the cache counters and the
timings. With ``--model`` the script uses the tokenizer's chat template (header in the prefix, assistant header
after the question) and prints real answers.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402

from structlm import rag  # noqa: E402
from structlm.hf import StructuredLM  # noqa: E402
from structlm.hf.attention import APE  # noqa: E402

DOCUMENTS = [
    "The Amazon river flows through Brazil Peru and Colombia and carries more water than any other river .",
    "Mount Kilimanjaro in Tanzania is the highest mountain in Africa at 5895 metres .",
    "The Danube flows through ten countries including Germany Austria Hungary and Romania .",
    "Lake Baikal in Siberia is the deepest lake in the world and holds a fifth of its fresh water .",
]
QUESTIONS = ["Which river carries the most water ?", "What is the deepest lake ?"]
INSTRUCTION = "Answer the question using the documents ."


def offline_model(texts: list[str]):
    """A tiny random Llama and a word tokenizer over the example's texts (no downloads)."""
    from structlm.testing import tiny_llama

    tokenizer = rag.demo_tokenizer(texts)
    return tiny_llama(len(tokenizer), max_positions=1024), tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="any Hugging Face decoder (hub id or path); default: offline tiny model")
    parser.add_argument("--temperature", type=float, default=0.9, help="APE temperature T")
    parser.add_argument("--scale", type=float, default=0.9, help="APE scale S")
    parser.add_argument("--convention", choices=["repo", "paper"], default="repo",
                        help="repo: context LSE x S*T (official code); paper: x S")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="four new tokens per answer")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_new_tokens = 4

    if args.model:
        lm = StructuredLM.from_pretrained(args.model)
        tokenizer = lm.tokenizer
        template = rag.Template.chat(tokenizer) if getattr(tokenizer, "chat_template", None) else None
    else:
        model, tokenizer = offline_model(DOCUMENTS + QUESTIONS + [INSTRUCTION])
        lm = StructuredLM(model, tokenizer=tokenizer)
        template = None
    ape = APE(temperature=args.temperature, scale=args.scale, convention=args.convention)
    eos = tokenizer.eos_token_id

    def answer(plan, **kwargs) -> tuple[str, float]:
        start = time.perf_counter()
        tokens = lm.generate(plan, max_new_tokens=args.max_new_tokens, eos_token_id=eos, **kwargs)
        return tokenizer.decode(tokens[0], skip_special_tokens=True), time.perf_counter() - start

    first = rag.parallel(tokenizer, DOCUMENTS, QUESTIONS[0], prefix=INSTRUCTION, template=template)
    print("APE layout (positions and visibility):")
    print(first.describe())
    print()
    for i, question in enumerate(QUESTIONS):
        plan = rag.parallel(tokenizer, DOCUMENTS, question, prefix=INSTRUCTION, template=template)
        hits, misses = lm.cache.hits, lm.cache.misses
        text, seconds = answer(plan, attention=ape)
        print(f"Q{i + 1} {question!r}")
        print(f"  parallel + APE(T={args.temperature}, S={args.scale}): {text!r}  [{seconds * 1e3:.0f} ms, "
              f"cache hits {lm.cache.hits - hits}, misses {lm.cache.misses - misses}]")
        sequential = rag.sequential(tokenizer, DOCUMENTS, question, prefix=INSTRUCTION, template=template)
        text, seconds = answer(sequential)
        print(f"  sequential:                  {text!r}  [{seconds * 1e3:.0f} ms; {len(sequential)} positions "
              f"vs {int(plan.position_ids.max()) + 1} in parallel]")
    print()
    print(f"cache: {lm.cache}")


if __name__ == "__main__":
    main()
