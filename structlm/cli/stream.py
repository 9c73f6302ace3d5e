"""``structlm stream``: read a text file word by word under wait-k and print what the model writes meanwhile."""
from __future__ import annotations

import argparse

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_PROMPT = "Copy the text below word for word.\n\nText: "


def _session(args: argparse.Namespace, words: list[str]):
    from structlm import stream
    from structlm.hf import StreamSession, StructuredLM

    if args.tiny:
        from structlm.testing import demo_tokenizer, tiny_llama

        tokenizer = demo_tokenizer([" ".join(words), args.prompt], bos=True)
        lm = StructuredLM(tiny_llama(len(tokenizer)), tokenizer=tokenizer)
        template = stream.StreamTemplate(target_start=tokenizer.encode("copy", add_special_tokens=False) or [1])
        words = [w.strip() for w in words]
    else:
        lm = StructuredLM.from_pretrained(args.model)
        tokenizer = lm.tokenizer
        if tokenizer is None:
            raise ValueError(f"{args.model} has no tokenizer; structlm stream reads text")
        template = stream.StreamTemplate.chat(tokenizer) if getattr(tokenizer, "chat_template", None) else None
    session = StreamSession(lm, policy=stream.WaitK(args.k), phi=args.phi, prompt=args.prompt, template=template)
    return session, words


def _run_stream(args: argparse.Namespace) -> int:
    """Stream the file through a session; one line per write, then the trace's latency."""
    from structlm import stream

    with open(args.file, encoding="utf-8") as handle:
        text = handle.read()
    words = stream.split_words(text)[: args.max_words] if args.max_words else stream.split_words(text)
    if not words:
        raise ValueError(f"{args.file} holds no words to stream")
    if args.k < 1:
        raise ValueError(f"--k must be at least 1, got {args.k}")
    if args.phi < 0:
        raise ValueError(f"--phi must be non-negative, got {args.phi}")
    args.phi = int(args.phi) if float(args.phi).is_integer() else args.phi
    session, words = _session(args, words)
    note = " (a random tiny model: the words are noise, the read/write schedule is the point)" if args.tiny else ""
    print(f"streaming {len(words)} words of {args.file} under wait-{args.k}, phi={args.phi}{note}")
    shown = 0
    for piece in session.run(words, max_extra_writes=args.max_extra_writes):
        read = " ".join(w.strip() for w in words[shown:min(session.n_read, len(words))])
        shown = max(shown, min(session.n_read, len(words)))
        print(f"{session.n_read:>5} read {('+ ' + read) if read else '':<30.30} wrote {piece!r}")
    print(f"written: {session.text()!r}")
    latency = session.latency(reference_length=len(words) if args.reference_is_source else None)
    print(f"AL {latency['AL']:.2f}  LAAL {latency['LAAL']:.2f}  (in words; {session.n_written} writes, "
          f"{session.source_length} source words)")
    if args.trace:
        session.show_trace(args.trace)
        print(f"trace picture: {args.trace}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stream",
        help="simultaneous reading and writing (group positions): stream a text file word by word under wait-k",
        description="Read FILE word by word into a StreamSession (source positions from 0, target from phi, "
        "nothing re-encoded) and print each piece the model writes as soon as the wait-k policy lets it, then "
        "AL and LAAL. The default model is the embedded SmolLM2-135M-Instruct and the default task is copying "
        "the text as it arrives; --tiny runs a random tiny Llama instead (offline, seconds, output is noise).",
    )
    parser.add_argument("file", help="a text file to stream (read word by word)")
    parser.add_argument("--k", type=int, default=3, help="wait-k: words read before the first write (default 3)")
    parser.add_argument("--phi", type=float, default=512.0,
                        help="first target position (default 512: an untrained model then sees every source "
                        "token as earlier than the target; the GPE paper fine-tunes with 0)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"a decoder: embedded name, folder or hub id "
                        f"(default {DEFAULT_MODEL})")
    parser.add_argument("--tiny", action="store_true", help="a random tiny Llama with a word tokenizer")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="the instruction in front of the source")
    parser.add_argument("--max-words", type=int, default=60, help="stream only the first N words (0: all)")
    parser.add_argument("--max-extra-writes", type=int, default=30, help="writes allowed after the source ends")
    parser.add_argument("--reference-is-source", action="store_true",
                        help="use the source length as the reference length in AL/LAAL (copy tasks)")
    parser.add_argument("--trace", metavar="PNG", help="also draw the read/write trace into PNG")
    parser.set_defaults(func=_run_stream)
