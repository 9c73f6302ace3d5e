"""The demo's candidate step: match standard-library functions to their docstrings, every candidate in one pass.

Real: MiniLM-L6 with Uni-Encoder's arrow mask (context and K candidates in one forward, candidates at shared
positions), ranked by the cosine of pooled states with the context, against K separate cross-encoder passes.
Quick: a tiny random BERT with MiniLM's tokenizer (the rankings are noise; the timings and the plan are real).
"""
from __future__ import annotations

import time

from structlm.demo.tour import Tour

__all__ = ["candidate_step"]

K = 10


def candidate_step(tour: Tour) -> None:
    from structlm.candidates import docstring_examples, summary, uni_encoder
    from structlm.hf import rank

    examples = docstring_examples(k=K, limit=4 if tour.quick else 20, seed=1, max_chars=1000)
    if tour.quick:
        from structlm.hf import StructuredLM
        from structlm.probe import load_packaged_minilm
        from structlm.testing import tiny_model

        tokenizer, _ = load_packaged_minilm(with_model=False)
        lm = StructuredLM(tiny_model("bert", vocab_size=len(tokenizer), max_position_embeddings=512),
                          tokenizer=tokenizer)
    else:
        lm = tour.model("all-minilm-l6-v2")
    golds = [f"candidate{e.gold}" for e in examples]
    plans = [uni_encoder(lm.tokenizer, e.context, list(e.candidates), model=lm) for e in examples]
    first = plans[0]
    tour.say(f"{first!r}: the context at positions 0..{len(first['context']) - 1}, all {K} candidates from "
             f"{first['candidate0'].start} (shared), each seeing the context and itself; the context sees all")
    start = time.perf_counter()
    one_pass = [rank(lm, plan) for plan in plans]
    one_time = time.perf_counter() - start
    start = time.perf_counter()
    separate = []
    for example in examples:
        scores = {}
        for i, candidate in enumerate(example.candidates):
            single = uni_encoder(lm.tokenizer, example.context, [candidate], model=lm, names=[f"candidate{i}"])
            scores.update(rank(lm, single).scores)
        separate.append(sorted(scores, key=lambda name: -scores[name]))
    many_time = time.perf_counter() - start
    ours = summary([r.order for r in one_pass], golds, ks=(1,))
    theirs = summary(separate, golds, ks=(1,))
    tour.say(f"{len(examples)} functions, K = {K}, untrained (cosine with the context): one arrow pass R@1 "
             f"{ours['R@1']:.2f} MRR {ours['MRR']:.2f} in {one_time:.1f} s; {K} cross-encoder passes each R@1 "
             f"{theirs['R@1']:.2f} MRR {theirs['MRR']:.2f} in {many_time:.1f} s: one pass {many_time / one_time:.1f}x "
             f"faster")
    example, best = examples[0], one_pass[0]
    tour.say(f"{example.label}: ranked {best.position(golds[0])} of {K}: {example.candidates[example.gold]!r}")
    tour.picture("candidates.png", lambda path: first.show(path))
