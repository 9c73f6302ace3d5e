"""The demo's RAG step: documents encoded in parallel, cached, and a question answered from them.

Real (SmolLM2-135M-Instruct): six short fact documents and six pydoc_data chunks behind the chat template; time
to first token of the ordinary sequential prefill vs the parallel plan cold vs with the contexts cached; the
answers of the sequential prompt, plain parallel encoding and parallel encoding with APE, each checked for the
expected answer. Quick (tiny random Llama): the layout, reuse == dense, cache hits, APE at T = S = 1 == plain.
"""
from __future__ import annotations

import time

from structlm.demo.tour import Tour

__all__ = ["rag_step", "FACTS", "QUESTIONS"]

FACTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It was designed by the engineer Gustave "
    "Eiffel's company and finished in 1889 for the World's Fair. It is 330 metres tall.",
    "Python is a programming language created by Guido van Rossum. It was first released in 1991. Its design "
    "emphasises code readability with significant indentation.",
    "The Nile is a major river in northeastern Africa. It flows north through eleven countries and empties into the "
    "Mediterranean Sea. It is about 6,650 kilometres long.",
    "Mount Kilimanjaro is a dormant volcano in Tanzania. At 5,895 metres it is the highest mountain in Africa and "
    "the highest free-standing mountain in the world.",
    "Lake Baikal is a rift lake in Siberia, Russia. It is the deepest lake in the world, with a maximum depth of "
    "1,642 metres, and holds about a fifth of the world's fresh surface water.",
    "The Amazon river in South America carries more water than any other river on Earth. Its basin covers about "
    "seven million square kilometres, much of it rainforest.",
]
TOPICS = ["assert", "lambda", "pass", "while", "global", "del"]  # pydoc_data topics: real text as distractors
QUESTIONS = [("When was Python first released?", "1991"), ("Who created Python?", "Guido van Rossum")]
SYSTEM = "Answer the question from the documents."
PREFIX = "Documents:\n"


def rag_step(tour: Tour) -> None:
    (_tiny if tour.quick else _real)(tour)


def documents(tokenizer, tokens: int = 120) -> list[str]:
    """The fact documents followed by the first ``tokens`` tokens of each pydoc_data topic in ``TOPICS``."""
    from pydoc_data.topics import topics

    chunks = [tokenizer.decode(tokenizer.encode(" ".join(topics[name].split()), add_special_tokens=False)[:tokens])
              for name in TOPICS]
    return FACTS + chunks


def _real(tour: Tour) -> None:
    import torch

    from structlm import rag
    from structlm.hf import APE
    from structlm.text import Template

    lm = tour.model("smollm2-135m-instruct")
    tok = lm.tokenizer
    docs, template = documents(tok), Template.chat(tok, system=SYSTEM)
    (question, answer), (second, second_answer) = QUESTIONS

    def plan(kind, q):
        return getattr(rag, kind)(tok, docs, q, prefix=PREFIX, template=template)

    def seconds(fn):
        start = time.perf_counter()
        result = fn()
        return result, time.perf_counter() - start

    lm.generate(rag.parallel(tok, docs[:1], "Hi.", template=template), max_new_tokens=2)  # warm-up, not timed
    sequential = plan("sequential", question)
    with torch.no_grad():
        lm.model(input_ids=sequential.input_ids[:, :64], use_cache=False, logits_to_keep=1)  # warm-up
        _, t_seq = seconds(lambda: lm.model(input_ids=sequential.input_ids, use_cache=False, logits_to_keep=1))
    lm.cache.clear()
    _, t_cold = seconds(lambda: lm.generate(plan("parallel", question), max_new_tokens=1))
    hits = lm.cache.hits
    _, t_warm = seconds(lambda: lm.generate(plan("parallel", second), max_new_tokens=1))
    tour.say(f"{len(docs)} documents ({len(FACTS)} facts, {len(TOPICS)} pydoc topics), {len(sequential)} tokens "
             f"in the sequential prompt; the parallel plan uses positions up to "
             f"{int(plan('parallel', question).position_ids.max())}")
    tour.say(f"time to first token: sequential prefill {t_seq * 1e3:.0f} ms; parallel cold {t_cold * 1e3:.0f} ms "
             f"({t_seq / t_cold:.1f}x); a new question over the cached contexts {t_warm * 1e3:.0f} ms "
             f"({t_seq / t_warm:.1f}x, {lm.cache.hits - hits} segments from the cache)")

    def ask(kind, q, expected, attention=None, label=None):
        text = tok.decode(lm.generate(plan(kind, q), max_new_tokens=24, attention=attention)[0],
                          skip_special_tokens=True).strip()
        verdict = "right" if expected.lower() in text.lower() else "wrong"
        tour.say(f"  {label or kind:<16} {verdict} ({expected!r} {'in' if verdict == 'right' else 'not in'} "
                 f"the answer): {text!r}")

    tour.say(f"Q: {question}")
    ask("sequential", question, answer)
    ask("parallel", question, answer)
    ask("parallel", question, answer, APE(), label="parallel + APE")
    tour.say(f"Q: {second}  (the same documents, from the cache)")
    ask("parallel", second, second_answer, APE(), label="parallel + APE")


def _tiny(tour: Tour) -> None:
    from structlm import rag
    from structlm.hf import APE, StructuredLM
    from structlm.testing import demo_tokenizer, tiny_llama

    contexts = ["the amazon river carries more water than any other river on earth",
                "lake baikal in siberia is the deepest lake in the world",
                "mount kilimanjaro in tanzania is the highest mountain in africa"]
    questions = ["which lake is the deepest", "which river carries the most water"]
    prefix = "answer from the documents"
    tokenizer = demo_tokenizer(contexts + questions + [prefix])
    lm = StructuredLM(tiny_llama(len(tokenizer)), tokenizer=tokenizer)
    first = rag.parallel(tokenizer, contexts, questions[0], prefix=prefix)
    starts = sorted({first[name].start for name in first.names if name.startswith("context")})
    tour.say(f"{first!r}; every context starts at position {starts}, the query at {first['query'].start}")
    reuse = lm.forward(first, backend="reuse").logits
    dense = lm.forward(first, backend="dense").logits
    tour.say(f"reuse vs dense backend, max |logit difference|: {(reuse - dense).abs().max().item():.2e}")
    second = rag.parallel(tokenizer, list(reversed(contexts)), questions[1], prefix=prefix)
    lm.cache.hits = lm.cache.misses = 0
    lm.forward(second, backend="reuse")
    tour.say(f"second question, contexts reordered: {lm.cache.hits} segments from the cache, {lm.cache.misses} encoded")
    plain = lm.forward(second, backend="reuse").logits
    neutral = lm.forward(second, backend="dense", attention=APE(temperature=1.0, scale=1.0)).logits
    tour.say(f"APE at T = S = 1 vs plain parallel attention: {(plain - neutral).abs().max().item():.2e}")
    tokens = lm.generate(second, max_new_tokens=5, attention=APE(0.9, 0.9), eos_token_id=[])
    tour.say(f"generated with APE(0.9, 0.9) on the random tiny model: {tokenizer.decode(tokens[0])!r}")
