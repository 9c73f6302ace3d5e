"""Rank candidates in one pass (Uni-Encoder): match standard-library functions to their docstrings.

    python examples/rank_candidates.py                         # offline: embedded MiniLM-L6 and SmolLM2-135M
    python examples/rank_candidates.py --quick                 # tiny random models (seconds; rankings are noise)
    python examples/rank_candidates.py --model BAAI/bge-small-en-v1.5   # any Hugging Face encoder or decoder

Steps:
1. the task (`structlm.candidates.docstring_examples`): a function's source without its docstring is the context;
   the first line of its docstring and K − 1 other functions' first lines are the candidates;
2. an encoder: one `arrow` plan per function (context at 0..H−1, every candidate at H.., token types 0 / 1) —
   rank by the cosine of pooled states with the context, then train a `RankingHead` on other functions (encoder
   frozen), save it, load it back and rank again; R@1 and MRR on the held-out functions;
3. a decoder: the causal form (each candidate after the context) — every candidate's log-likelihood from one
   pass, checked against K separate passes, and the time of both.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from structlm.candidates import docstring_examples, split, summary, uni_encoder  # noqa: E402
from structlm.hf import RankingHead, StructuredLM, fine_tune, rank  # noqa: E402

QUESTION = "\n\nThe first line of this function's docstring is:"


def load(args, texts: list[str]) -> tuple[StructuredLM, StructuredLM]:
    """(encoder, decoder): the embedded models, tiny random ones (--quick), or --model for both roles."""
    if args.model:
        lm = StructuredLM.from_pretrained(args.model)
        return lm, lm
    if args.quick:
        from structlm.probe import load_packaged_minilm
        from structlm.testing import demo_tokenizer, tiny_llama, tiny_model

        bert_tokenizer, _ = load_packaged_minilm(with_model=False)
        words = demo_tokenizer(texts + [QUESTION])
        encoder = StructuredLM(tiny_model("bert", vocab_size=len(bert_tokenizer), max_position_embeddings=512),
                               tokenizer=bert_tokenizer)
        return encoder, StructuredLM(tiny_llama(len(words)), tokenizer=words)
    return StructuredLM.from_pretrained("all-minilm-l6-v2"), StructuredLM.from_pretrained("smollm2-135m-instruct")


def encoder_part(lm: StructuredLM, train, test, epochs: int) -> None:
    gold = [f"candidate{e.gold}" for e in test]
    plans = [uni_encoder(lm.tokenizer, e.context, list(e.candidates), model=lm) for e in test]
    example = test[0]
    first = rank(lm, plans[0])
    print(f"\n{example.label}: the right line is candidate{example.gold}; one arrow pass ranks them "
          f"({len(plans[0])} tokens):")
    texts = {f"candidate{i}": c for i, c in enumerate(example.candidates)}
    print("\n".join(first.table(texts).splitlines()[:3]) + "\n    ...")
    untrained = summary([rank(lm, p).order for p in plans], gold, ks=(1, 5))
    print(f"untrained (cosine with the context), {len(test)} held-out functions: "
          + "  ".join(f"{k} {v:.3f}" for k, v in untrained.items()))
    head = RankingHead.for_model(lm)
    training = [(uni_encoder(lm.tokenizer, e.context, list(e.candidates), model=lm), f"candidate{e.gold}")
                for e in train]
    report = fine_tune(lm, head, training, epochs=epochs, lr=3e-3, progress=True)
    with tempfile.TemporaryDirectory() as folder:
        path = head.save(Path(folder) / "head.safetensors")
        head = RankingHead.load(path)
    trained = summary([rank(lm, p, head=head).order for p in plans], gold, ks=(1, 5))
    print(f"head trained on {len(train)} other functions ({report}), saved and loaded back: "
          + "  ".join(f"{k} {v:.3f}" for k, v in trained.items()))


def decoder_part(lm: StructuredLM, example) -> None:
    candidates = [" " + c for c in example.candidates]
    context = example.context + QUESTION
    plan = uni_encoder(lm.tokenizer, context, candidates, model=lm)
    start = time.perf_counter()
    one = rank(lm, plan, backend="dense")
    one_time = time.perf_counter() - start
    start = time.perf_counter()
    separate = {}
    for i, candidate in enumerate(candidates):
        single = uni_encoder(lm.tokenizer, context, [candidate], model=lm, names=[f"candidate{i}"])
        separate.update(lm.score(single, [f"candidate{i}"], backend="dense"))
    many_time = time.perf_counter() - start
    diff = max(abs(one.scores[n] - separate[n]) for n in separate)
    print(f"\ndecoder form, {example.label}: {len(candidates)} candidates after a {len(plan['context'])}-token "
          f"context; the right one ranks {one.position(f'candidate{example.gold}')}")
    print(f"one pass {one_time * 1e3:.0f} ms vs {len(candidates)} separate passes {many_time * 1e3:.0f} ms "
          f"({many_time / one_time:.1f}x); same scores as K separate passes: {diff < 1e-3} (max |diff| {diff:.1e})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny random models and a few functions (seconds)")
    parser.add_argument("--model", help="a Hugging Face encoder or decoder (folder or hub id) for every step")
    parser.add_argument("--k", type=int, default=10, help="candidates per function")
    parser.add_argument("--functions", type=int, default=60, help="functions used (half train, half test)")
    args = parser.parse_args(argv)
    count = 8 if args.quick else args.functions
    examples = docstring_examples(k=args.k, limit=count, seed=0, max_chars=1200)
    train, test = split(examples, held_out=0.5)
    texts = [e.context for e in examples] + [c for e in examples for c in e.candidates]
    encoder, decoder = load(args, texts)
    print(f"docstring task: {len(examples)} standard-library functions, K = {args.k} candidates each")
    if not encoder.is_decoder:
        encoder_part(encoder, train, test, epochs=5 if args.quick else 40)
    if decoder.is_decoder:
        decoder_part(decoder, test[0])


if __name__ == "__main__":
    main()
