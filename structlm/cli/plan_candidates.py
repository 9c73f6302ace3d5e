"""``structlm plan candidates CONTEXT CANDIDATES``: a Uni-Encoder plan (the context and every candidate in one
pass) from two files."""
from __future__ import annotations

import argparse

from structlm.cli.inputs import CANDIDATE_FORMATS, load_tokenizer, read_candidates, read_text
from structlm.cli.plan_kinds import kind

FORMS = ("auto", "encoder", "decoder")


def candidate_arguments(parser: argparse.ArgumentParser) -> None:
    """The inputs and layout options ``structlm plan candidates`` and ``structlm rank`` share."""
    from structlm.candidates import MASKS

    parser.add_argument("input", metavar="CONTEXT",
                        help="a text file: the context (e.g. a dialogue, a function)")
    parser.add_argument("candidates", metavar="CANDIDATES", help=CANDIDATE_FORMATS)
    parser.add_argument("--layout", dest="layout_mask", choices=MASKS, default="arrow",
                        help="the attention mask: arrow: Uni-Encoder (the context sees every candidate); diag: "
                        "bi-encoder; square: everything sees everything; no-peek: the context sees only itself "
                        "(default arrow)")
    parser.add_argument("--form", choices=FORMS, default="auto",
                        help="encoder: [CLS] … [SEP] segments, bidirectional, token types; decoder: causal, each "
                        "candidate after the context; auto: from the model or tokenizer (default)")


def read_inputs(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The context text and the candidate texts named by ``args``."""
    context = read_text(args.input).strip()
    if not context:
        raise ValueError(f"{args.input}: the context file is empty")
    return context, read_candidates(args.candidates)


def form(args: argparse.Namespace) -> bool | None:
    """``--form`` as ``uni_encoder``'s ``decoder`` argument."""
    return {"auto": None, "encoder": False, "decoder": True}[args.form]


def _build_candidates(args: argparse.Namespace):
    from structlm.candidates import uni_encoder

    context, candidates = read_inputs(args)
    tokenizer = load_tokenizer(args.tokenizer, [context] + candidates, default="minilm")
    plan = uni_encoder(tokenizer, context, candidates, mask=args.layout_mask, decoder=form(args))
    shape = "decoder" if plan["context"].causal else "encoder"
    notes = [f"{len(candidates)} candidates, {args.layout_mask} mask, {shape} form: context at positions "
             f"0..{len(plan['context']) - 1}, every candidate from {len(plan['context'])}"
             + ("" if plan.token_type_ids is None else "; token types 0 (context) / 1 (candidates)")]
    return plan, notes


kind("candidates", "a context and a candidates file -> Uni-Encoder plan (all candidates in one pass)",
     candidate_arguments, _build_candidates,
     description="Read a context (text file) and candidates (one per line, JSON or JSONL) and build the Uni-Encoder "
     "plan: the context at positions 0..H-1, every candidate at H.. (shared positions), with the arrow, diag, square "
     "or no-peek mask; the decoder form for causal LMs. The default tokenizer is the packaged MiniLM one "
     "(--tokenizer words: a word-level one, decoder form).")
