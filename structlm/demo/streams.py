"""The demo's stream step: a decoder copies a stdlib doc text while reading it (wait-k, group positions).

Real: SmolLM2-135M-Instruct through the chat template; quick: a tiny random Llama. Either way the session's
logits are checked against its batch plan run densely, and AL / LAAL and the time per write are reported.
"""
from __future__ import annotations

import time

from structlm.demo.tour import Tour

__all__ = ["stream_step", "copy_source"]

PROMPT = "Copy the text below word for word.\n\nText: "
K, PHI = 3, 512


def copy_source(words: int, topic: str = "lambda") -> str:
    """The first ``words`` words of a pydoc_data topic's prose (its title and grammar lines left out)."""
    from pydoc_data.topics import topics

    paragraphs = [p for p in topics[topic].split("\n\n")
                  if p.strip() and "::=" not in p and not set(p.strip()) <= set("*=-")]
    return " ".join(" ".join(paragraphs[1:] or paragraphs).split()[:words])


def stream_step(tour: Tour) -> None:
    import torch

    from structlm import stream
    from structlm.hf import StreamSession

    text = copy_source(8 if tour.quick else 20)
    if tour.quick:
        from structlm.hf import StructuredLM
        from structlm.testing import demo_tokenizer, tiny_llama

        tokenizer = demo_tokenizer([text, PROMPT, "copy"], bos=True)
        lm = StructuredLM(tiny_llama(len(tokenizer)), tokenizer=tokenizer)
        template, words, eos = stream.StreamTemplate(target_start="copy"), text.split(), []
    else:
        lm = tour.model("smollm2-135m-instruct")
        template, words, eos = stream.StreamTemplate.chat(lm.tokenizer), stream.split_words(text), None
    session = StreamSession(lm, policy=stream.WaitK(K), phi=PHI, prompt=PROMPT, template=template, keep_logits=True,
                            eos_token_id=eos)
    start = time.perf_counter()
    pieces = list(session.run(words, max_extra_writes=3))
    seconds = time.perf_counter() - start
    latency = session.latency(reference_length=len(words))
    tour.say(f"source: {len(words)} words of pydoc 'lambda', read one at a time; wait-{K}, target positions from "
             f"{PHI}")
    tour.say(session.trace_text(width=36))
    tour.say(f"written: {session.text()!r}\n{len(pieces)} writes in {seconds:.1f} s "
             f"({seconds / max(1, len(pieces)) * 1e3:.0f} ms per write, reads included); AL {latency['AL']:.2f}, "
             f"LAAL {latency['LAAL']:.2f} words; encoded {session.encoded['source']} source + "
             f"{session.encoded['target']} target tokens, nothing twice")
    plan = session.plan()
    first = len(plan) - len(session.written) - 1
    rows = torch.arange(first, first + len(session.written))
    batch = lm.forward(plan, backend="dense", logits_for=rows).logits[0]
    tour.say(f"session == its batch plan (dense), max |logit difference|: "
             f"{(torch.stack(session.logits) - batch).abs().max().item():.2e}")
    tour.picture("stream.png", lambda path: session.show_trace(path, title=f"wait-{K}: copying while reading"))
