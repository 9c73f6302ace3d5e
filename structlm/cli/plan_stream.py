"""``structlm plan stream SOURCE TARGET``: a stream's training plan (group positions, the wait-k mask) from two
text files, read word by word."""
from __future__ import annotations

import argparse

from structlm.cli.inputs import load_tokenizer, read_text
from structlm.cli.plan_kinds import kind


def _stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="SOURCE", help="a text file: the source stream, read one word per chunk")
    parser.add_argument("target", metavar="TARGET", help="a text file: the target, written one word per chunk")
    parser.add_argument("--k", type=int, default=3, help="wait-k: source words read before the first target word")
    parser.add_argument("--phi", type=float, default=0, help="first target position (GPE's phi; default 0)")
    parser.add_argument("--prompt", default="", help="an instruction in front of the source (in the source group)")


def _words(path: str) -> list[str]:
    from structlm.stream import split_words

    words = split_words(read_text(path))
    if not words:
        raise ValueError(f"{path} holds no words")
    return words


def _build_stream(args: argparse.Namespace):
    from structlm import stream

    if args.k < 1:
        raise ValueError(f"--k must be at least 1, got {args.k}")
    if args.phi < 0:
        raise ValueError(f"--phi must be non-negative, got {args.phi}")
    phi = int(args.phi) if float(args.phi).is_integer() else args.phi
    source, target = _words(args.input), _words(args.target)
    tokenizer = load_tokenizer(args.tokenizer, source + target + [args.prompt])
    plan = stream.plan(source, target, policy=stream.WaitK(args.k), phi=phi, prompt=args.prompt or None,
                       tokenizer=tokenizer)
    sources = [s for s in plan if s.role == "source"]
    targets = [s for s in plan if s.role == "target"]
    notes = [f"{len(source)} source words, {len(target)} target words, wait-{args.k}, phi={phi}",
             f"source positions {sources[0].start}..{sources[-1].start + len(sources[-1]) - 1}; "
             f"target positions from {targets[0].start} (group positions: nothing is re-encoded)"]
    return plan, notes


kind("stream", "a source and a target text file -> group-position streaming plan under wait-k", _stream_arguments,
     _build_stream, description="Read a source and a target text file word by word and build the stream's "
     "training plan: the source keeps positions from 0, the target from --phi, and each target word sees the "
     "source words the wait-k policy has read when it is written (GPE).")
