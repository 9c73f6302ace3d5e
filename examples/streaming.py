"""Simultaneous reading and writing with group positions: SmolLM2 copies a stdlib doc text while it reads it.

    python examples/streaming.py                 # the embedded SmolLM2-135M-Instruct, offline
    python examples/streaming.py --k 2 --topic for
    python examples/streaming.py --model PATH    # another decoder (folder or hub id)
    python examples/streaming.py --quick         # a tiny random Llama (seconds; run by the tests)

The source arrives word by word (pydoc_data topics: the stdlib's own documentation text). Under wait-k the
session writes one word after each word it reads, starting after k words; the offline answer reads the whole
text first. Both use the same session code: source positions from 0, target positions from phi, nothing
re-encoded. The script prints the trace (what had been read before each write), AL / LAAL, both outputs, and
checks that the session's numbers are the batch plan's.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from structlm import stream  # noqa: E402
from structlm.hf import StreamSession, StructuredLM  # noqa: E402

PROMPT = "Copy the text below word for word.\n\nText: "


def source_text(topic: str, words: int) -> str:
    """The first paragraph of a pydoc topic after its title, cut to ``words`` words."""
    from pydoc_data.topics import topics

    paragraphs = [p for p in topics[topic].split("\n\n")
                  if p.strip() and "::=" not in p and not set(p.strip()) <= set("*=-")]  # prose, not grammar
    body = " ".join(paragraphs[1:] if len(paragraphs) > 1 else paragraphs)
    return " ".join(body.split()[:words])


def load(args):
    if args.quick:
        from structlm.testing import demo_tokenizer, tiny_llama

        text = source_text(args.topic, args.words)
        tokenizer = demo_tokenizer([text, PROMPT, "copy"], bos=True)
        lm = StructuredLM(tiny_llama(len(tokenizer)), tokenizer=tokenizer)
        return lm, stream.StreamTemplate(target_start="copy"), [w.strip() for w in stream.split_words(text)]
    lm = StructuredLM.from_pretrained(args.model)
    return lm, stream.StreamTemplate.chat(lm.tokenizer), stream.split_words(source_text(args.topic, args.words))


def stream_once(lm, template, words, policy, phi, max_extra_writes, eos=None):
    session = StreamSession(lm, policy=policy, phi=phi, prompt=PROMPT, template=template, keep_logits=True,
                            eos_token_id=eos)
    start = time.perf_counter()
    pieces = list(session.run(words, max_extra_writes=max_extra_writes))
    return session, pieces, time.perf_counter() - start


def check_against_plan(lm, session) -> float:
    """Largest logit difference between the live session and its batch plan run densely."""
    plan = session.plan()
    logits = lm.forward(plan, backend="dense").logits[0]
    first = len(plan) - len(session.written) - 1
    return (torch.stack(session.logits) - logits[first:first + len(session.written)]).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="embedded name, folder or hub id")
    parser.add_argument("--quick", action="store_true", help="a tiny random Llama (offline, seconds)")
    parser.add_argument("--topic", default="lambda", help="a pydoc_data topic (e.g. assert, for, while, pass)")
    parser.add_argument("--words", type=int, default=36, help="source words to stream")
    parser.add_argument("--extra-writes", type=int, default=5, help="writes allowed after the source ends")
    parser.add_argument("--k", type=int, default=3, help="wait-k")
    parser.add_argument("--phi", type=int, default=512, help="first target position")
    parser.add_argument("--trace", metavar="PNG", help="draw the streaming trace into PNG")
    args = parser.parse_args()
    lm, template, words = load(args)
    extra = args.extra_writes
    eos = [] if args.quick else None  # a random model says </s> at random: let it write on
    live, pieces, live_s = stream_once(lm, template, words, stream.WaitK(args.k), args.phi, extra, eos)
    offline, _, offline_s = stream_once(lm, template, words, lambda n_read, n_written: "read", args.phi, extra,
                                        eos)
    print(f"source ({len(words)} words, pydoc topic {args.topic!r}): {' '.join(w.strip() for w in words)}")
    print(f"\nwait-{args.k} trace (phi={args.phi}):")
    print(live.trace_text(width=40))
    reference = len(words)  # a copy task: the reference is as long as the source
    for name, session, seconds in (("streaming", live, live_s), ("offline", offline, offline_s)):
        lat = session.latency(reference_length=reference)
        print(f"\n{name:>9}: {session.text()!r}")
        print(f"{'':>9}  AL {lat['AL']:.2f}  LAAL {lat['LAAL']:.2f} words; {session.n_written} writes in {seconds:.1f} s; "
              f"encoded {session.encoded['source']} source + {session.encoded['target']} target tokens")
    print(f"\nsession == batch plan: max |logit difference| {check_against_plan(lm, live):.2e}")
    if args.trace:
        live.show_trace(args.trace, title=f"wait-{args.k}: copying pydoc '{args.topic}' while reading")
        print(f"trace picture: {args.trace}")


if __name__ == "__main__":
    main()
