"""``structlm rank``: rank candidates for a context in one pass (Uni-Encoder) on a model, and print the ranking."""
from __future__ import annotations

import argparse

DEFAULT_MODEL = "all-minilm-l6-v2"


def _model(args: argparse.Namespace, texts: list[str]):
    from structlm.hf import StructuredLM

    if args.tiny:
        from structlm.testing import demo_tokenizer, tiny_llama

        tokenizer = demo_tokenizer(texts)
        return StructuredLM(tiny_llama(len(tokenizer)), tokenizer=tokenizer)
    lm = StructuredLM.from_pretrained(args.model)
    if lm.tokenizer is None:
        raise ValueError(f"{args.model} has no tokenizer; structlm rank reads text")
    return lm


def _run_rank(args: argparse.Namespace) -> int:
    from structlm.candidates import uni_encoder
    from structlm.cli.plan_candidates import form, read_inputs
    from structlm.hf import rank

    context, candidates = read_inputs(args)
    head = None
    if args.head:
        from structlm.hf import RankingHead

        head = RankingHead.load(args.head)
    lm = _model(args, [context] + candidates)
    if head is not None and lm.is_decoder:
        raise ValueError("--head is for encoders; a decoder ranks by log-likelihood")
    if head is not None and head.hidden_size != lm.config.hidden_size:
        raise ValueError(f"{args.head} is a head for hidden size {head.hidden_size}, but the model's is "
                         f"{lm.config.hidden_size}")
    plan = uni_encoder(lm.tokenizer, context, candidates, mask=args.layout_mask, decoder=form(args), model=lm)
    ranking = rank(lm, plan, head=head, normalize=args.normalize)
    kind = "decoder: log-likelihood" + (" per token" if args.normalize else "") if lm.is_decoder else \
        ("encoder: trained head" if head is not None else "encoder: cosine with the context")
    note = " (a random tiny model: the order is noise)" if args.tiny else ""
    print(f"{len(candidates)} candidates ranked in one pass ({args.layout_mask} mask, {kind}, {len(plan)} tokens)"
          f"{note}")
    texts = dict(zip([s.name for s in plan if s.role == "candidate"], candidates))
    shown = ranking.order[: args.top] if args.top else ranking.order
    for i, name in enumerate(shown, 1):
        print(f"{i:>3}  {ranking.scores[name]:>10.4f}  {texts[name]}")
    return 0


def register(subparsers) -> None:
    from structlm.cli.plan_candidates import candidate_arguments

    parser = subparsers.add_parser(
        "rank",
        help="rank candidates for a context in one pass (Uni-Encoder) and print the ranking",
        description="Read a context and candidates, put them in one Uni-Encoder plan (the context at 0..H-1, every "
        "candidate at H.., the arrow mask by default) and score every candidate from one forward pass: an encoder "
        "by the cosine of pooled states with the context (or a trained --head), a decoder by each candidate's "
        "log-likelihood after the context. The default model is the embedded MiniLM-L6; --tiny runs a random "
        "tiny Llama instead (offline, seconds, the order is noise).",
    )
    candidate_arguments(parser)
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"embedded name, folder or hub id (default "
                        f"{DEFAULT_MODEL}; smollm2-135m-instruct for the decoder form)")
    parser.add_argument("--tiny", action="store_true", help="a random tiny Llama with a word tokenizer")
    parser.add_argument("--head", metavar="FILE", help="a trained RankingHead (RankingHead.save) for an encoder")
    parser.add_argument("--normalize", action="store_true", help="decoders: log-likelihood per token")
    parser.add_argument("--top", type=int, default=0, help="print only the first N (default: all)")
    parser.set_defaults(func=_run_rank)
