"""Candidate sets (Uni-Encoder): one pass over a context and all K candidates against K separate passes.

    python benchmarks/candidates.py                 # MiniLM-L6 quality + timing at K = 10 and 100, SmolLM2 decoder form
    python benchmarks/candidates.py --quick         # tiny random models (seconds; the numbers mean little)
    python benchmarks/candidates.py --test 80 --train 120 --no-decoder

The task (``structlm.candidates.docstring_examples``): the context is a standard-library function's source with
its docstring removed; the candidates are the first line of its docstring and K − 1 other functions' first lines.
A function is in the training split or in the test split, never both.

* **quality (MiniLM-L6, K = 10)**: R@1 and MRR on the test split for the one-pass ``arrow`` plan (Uni-Encoder),
  K separate cross-encoder passes (``[CLS] context [SEP] [CLS] candidate [SEP]``, all see all) and the bi-encoder
  (``diag``: each side alone, one pass). Untrained: the cosine of a candidate's pooled states with the pooled
  context. Fine-tuned: a ``RankingHead`` (pooled candidate → logit) trained on the training split with the
  encoder frozen, for the arrow and cross-encoder layouts (a pointwise head cannot rank a bi-encoder's candidates,
  which never see the context), plus arrow with the encoder trained too (``--encoder-epochs``).
* **time (MiniLM-L6)**: one arrow pass vs K cross-encoder passes over the same contexts, K = 10 and 100; wall and
  process CPU time, the ratio measured in this run. Contexts are the longest functions, cut to ``--context-tokens``.
* **decoder form (SmolLM2-135M-Instruct)**: context "source + a question", candidates " first line"; each
  candidate's log-likelihood from one pass (dense, and the KV-reuse backend: context once, then every candidate on
  its cache) vs K plain passes of context + candidate; R@1 / MRR (the same scores, so the same ranking), the largest
  score difference, and the time ratio at K = 10 and 100.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402

import torch  # noqa: E402

from measure import timed  # noqa: E402
from structlm.candidates import Example, docstring_examples, split, summary, uni_encoder  # noqa: E402
from structlm.hf import RankingHead, StructuredLM, fine_tune, rank  # noqa: E402
from structlm.hf.ranking_train import group_vectors  # noqa: E402

QUESTION = "\n\nThe first line of this function's docstring is:"


# ------------------------------------------------------------------------------------------------- models
def load_encoder(quick: bool, texts: list[str]) -> tuple[StructuredLM, str]:
    if quick:
        from structlm.probe import load_packaged_minilm
        from structlm.testing import tiny_model

        tokenizer, _ = load_packaged_minilm(with_model=False)
        model = tiny_model("bert", vocab_size=len(tokenizer), max_position_embeddings=512, hidden_size=64,
                           intermediate_size=128)
        return StructuredLM(model, tokenizer=tokenizer), "tiny random BERT (MiniLM's tokenizer)"
    return StructuredLM.from_pretrained("all-minilm-l6-v2"), "MiniLM-L6 (embedded, fp32)"


def load_decoder(quick: bool, texts: list[str]) -> tuple[StructuredLM, str]:
    if quick:
        from structlm.testing import demo_tokenizer, tiny_llama

        tokenizer = demo_tokenizer(texts + [QUESTION])
        return StructuredLM(tiny_llama(len(tokenizer)), tokenizer=tokenizer), "tiny random Llama"
    return StructuredLM.from_pretrained("smollm2-135m-instruct"), "SmolLM2-135M-Instruct (embedded, fp32)"


# ------------------------------------------------------------------------------------------------- encoders
def arrow_plan(lm, example: Example, mask: str = "arrow", context=None):
    return uni_encoder(lm.tokenizer, context if context is not None else example.context, list(example.candidates),
                       mask=mask, model=lm)


def cross_plans(lm, example: Example, context=None):
    """K plans, each the context with one candidate (all see all): a cross-encoder's K passes."""
    context = context if context is not None else example.context
    return [uni_encoder(lm.tokenizer, context, [c], mask="square", model=lm, names=[f"candidate{i}"])
            for i, c in enumerate(example.candidates)]


def gold(example: Example) -> str:
    return f"candidate{example.gold}"


def cross_scores(lm, plans, head=None) -> dict[str, float]:
    scores = {}
    for plan in plans:
        scores.update(rank(lm, plan, head=head).scores)
    return scores


def order(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda n: -scores[n])


def head_scores(head, vectors: torch.Tensor, names: list[str]) -> dict[str, float]:
    with torch.no_grad():
        return dict(zip(names, head(vectors).tolist()))


def quality(lm, train: list[Example], test: list[Example], encoder_epochs: int, epochs: int) -> list[tuple]:
    rows = []
    golds = [gold(e) for e in test]
    layouts = {"arrow (one pass)": lambda e: arrow_plan(lm, e),
               "cross-encoder (K passes)": lambda e: cross_plans(lm, e),
               "bi-encoder (diag, one pass)": lambda e: arrow_plan(lm, e, "diag")}
    test_vectors = {}
    for label, build in layouts.items():
        rankings, vectors = [], []
        for example in test:
            group = build(example)
            plans = group if isinstance(group, list) else [group]
            scores = cross_scores(lm, plans)
            rankings.append(order(scores))
            if not label.startswith("bi-encoder"):
                vectors.append(group_vectors(lm, group))
        if vectors:
            test_vectors[label] = vectors
        rows.append((label, "untrained (cosine with the context)", summary(rankings, golds)))
    names = [f"candidate{i}" for i in range(len(test[0].candidates))]
    for label in ("arrow (one pass)", "cross-encoder (K passes)"):
        build = layouts[label]
        head = RankingHead.for_model(lm)
        report = fine_tune(lm, head, [(build(e), gold(e)) for e in train], epochs=epochs, batch_size=8, lr=3e-3,
                           progress=False)
        rankings = [order(head_scores(head, v, names)) for v in test_vectors[label]]
        rows.append((label, f"head fine-tuned, encoder frozen ({report.epoch_losses[0]:.2f} -> "
                     f"{report.epoch_losses[-1]:.2f})", summary(rankings, golds)))
    if encoder_epochs:
        state = {k: v.clone() for k, v in lm.model.state_dict().items()}
        head = RankingHead.for_model(lm)
        report = fine_tune(lm, head, [(arrow_plan(lm, e), gold(e)) for e in train], epochs=encoder_epochs,
                           batch_size=8, lr=1e-2, encoder_lr=1e-4, train_encoder=True, progress=False)
        rankings = [rank(lm, arrow_plan(lm, e), head=head).order for e in test]
        rows.append(("arrow (one pass)", f"head + encoder fine-tuned, {encoder_epochs} epoch(s) "
                     f"({report.epoch_losses[0]:.2f} -> {report.epoch_losses[-1]:.2f})", summary(rankings, golds)))
        lm.model.load_state_dict(state)
    return rows


def context_ids(lm, example: Example, limit: int) -> list[int]:
    """``[CLS] source [SEP]`` cut to ``limit`` tokens (keeping the start: the signature)."""
    tokenizer = lm.tokenizer
    body = tokenizer.encode(example.context, add_special_tokens=False)[: limit - 2]
    return [tokenizer.cls_token_id] + body + [tokenizer.sep_token_id]


def encoder_timing(lm, examples: list[Example], k: int, context_tokens: int, repeat: int) -> dict:
    one, many = [], []
    for example in examples:
        ids = context_ids(lm, example, context_tokens)
        candidate_ids = [lm.tokenizer.encode(c) for c in example.candidates[:k]]
        plan = uni_encoder(None, ids, candidate_ids, model=lm)
        plans = [uni_encoder(None, ids, [c], mask="square", model=lm, names=[f"candidate{i}"])
                 for i, c in enumerate(candidate_ids)]
        rank(lm, plan)
        rank(lm, plans[0])  # warm-up
        for _ in range(repeat):
            one.append(timed(lambda: rank(lm, plan))[1:3])
            many.append(timed(lambda: cross_scores(lm, plans))[1:3])
    separate = sum(len(p) for p in plans)
    return _ratios(one, many, tokens=len(plan), context=len(ids), bound=separate / len(plan))


def _ratios(one, many, **extra) -> dict:
    wall1, cpu1 = sum(w for w, _ in one), sum(c for _, c in one)
    wallk, cpuk = sum(w for w, _ in many), sum(c for _, c in many)
    return {"one": wall1 / len(one), "one_cpu": cpu1 / len(one), "many": wallk / len(many),
            "many_cpu": cpuk / len(many), "ratio": wallk / wall1, "ratio_cpu": cpuk / cpu1, **extra}


# ------------------------------------------------------------------------------------------------- decoders
def decoder_context(example: Example) -> str:
    return example.context + QUESTION


def decoder_plans(lm, example: Example, k: int):
    candidates = [" " + c for c in example.candidates[:k]]
    plan = uni_encoder(lm.tokenizer, decoder_context(example), candidates, model=lm)
    singles = [uni_encoder(lm.tokenizer, decoder_context(example), [c], model=lm, names=[f"candidate{i}"])
               for i, c in enumerate(candidates)]
    return plan, singles


def separate_scores(lm, singles) -> dict[str, float]:
    """Each candidate in its own plain forward of context + candidate (the runtime's sequential plan)."""
    scores = {}
    for plan in singles:
        scores.update(lm.score(plan, [s.name for s in plan if s.role == "candidate"], backend="dense"))
    return scores


def decoder_run(lm, examples: list[Example], k: int, repeat: int, measure_quality: bool) -> dict:
    one_dense, one_reuse, many, rankings, per_token, golds, diffs = [], [], [], [], [], [], []
    for example in examples:
        plan, singles = decoder_plans(lm, example, k)
        dense = rank(lm, plan, backend="dense")
        separate = separate_scores(lm, singles)
        diffs.append(max(abs(dense.scores[n] - separate[n]) for n in separate))
        if measure_quality:
            rankings.append(dense.order)
            per_token.append(rank(lm, plan, backend="dense", normalize=True).order)
            golds.append(gold(example))
        lm.cache.clear()
        for _ in range(repeat):
            one_dense.append(timed(lambda: rank(lm, plan, backend="dense"))[1:3])
            lm.cache.clear()  # the reuse backend would find the context cached from the last round
            one_reuse.append(timed(lambda: rank(lm, plan, backend="reuse"))[1:3])
            many.append(timed(lambda: separate_scores(lm, singles))[1:3])
    result = {"tokens": len(plan), "context": len(plan["context"]), "diff": max(diffs),
              "bound": sum(len(p) for p in singles) / len(plan)}
    if repeat:
        result.update(_ratios(one_dense, many))
        reuse = _ratios(one_reuse, many)
        result.update(reuse_one=reuse["one"], reuse_ratio=reuse["ratio"], reuse_ratio_cpu=reuse["ratio_cpu"])
    if measure_quality:
        result["quality"] = summary(rankings, golds)
        result["per_token"] = summary(per_token, golds)
    return result


# ------------------------------------------------------------------------------------------------- main
def _metrics(values: dict) -> str:
    return "  ".join(f"{k} {v:.3f}" for k, v in values.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny random models, few examples (seconds)")
    parser.add_argument("--train", type=int, default=120, help="training examples (K = 10)")
    parser.add_argument("--test", type=int, default=80, help="test examples (K = 10)")
    parser.add_argument("--epochs", type=int, default=30, help="head-only fine-tuning epochs (frozen features)")
    parser.add_argument("--encoder-epochs", type=int, default=2, help="epochs of arrow fine-tuning with the encoder "
                        "trained too (0: skip)")
    parser.add_argument("--timing-contexts", type=int, default=3, help="contexts timed per K")
    parser.add_argument("--context-tokens", type=int, default=480, help="encoder timing: context cut to this many")
    parser.add_argument("--repeat", type=int, default=2, help="timed repeats per context")
    parser.add_argument("--decoder-examples", type=int, default=40, help="SmolLM2 R@1/MRR examples (K = 10)")
    parser.add_argument("--decoder-timing-contexts", type=int, default=1, help="SmolLM2 contexts timed per K "
                        "(one repeat each)")
    parser.add_argument("--no-decoder", action="store_true", help="skip the SmolLM2 part")
    parser.add_argument("--no-encoder", action="store_true", help="skip the MiniLM part")
    parser.add_argument("--decoder-chars", type=int, default=1200, help="SmolLM2 timing: function sources cut to "
                        "this many characters (longer contexts raise the one-pass advantage)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.quick:
        args.train, args.test, args.epochs, args.encoder_epochs = 16, 8, 5, 1
        args.timing_contexts, args.repeat, args.decoder_examples, args.context_tokens = 1, 1, 4, 200
        args.decoder_timing_contexts = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    examples = docstring_examples(k=10, seed=0, max_chars=1200)
    train, test = split(examples[: args.train + args.test], held_out=args.test / (args.train + args.test))
    if not args.no_encoder:
        encoder_part(args, train, test)
    if not args.no_decoder:
        decoder_part(args, examples, test)


def encoder_part(args, train: list[Example], test: list[Example]) -> None:
    lm, name = load_encoder(args.quick, [])
    print(f"encoder: {name}; torch threads {torch.get_num_threads()}; docstring task, K = 10: "
          f"{len(train)} training / {len(test)} test functions")
    print("| layout | scoring | R@1 | R@2 | R@5 | MRR |")
    print("|---|---|---|---|---|---|")
    for label, how, values in quality(lm, train, test, args.encoder_epochs, args.epochs):
        print(f"| {label} | {how} | {values['R@1']:.3f} | {values['R@2']:.3f} | {values['R@5']:.3f} | "
              f"{values['MRR']:.3f} |")

    wide = docstring_examples(k=100, seed=1, max_chars=4000)
    tokenizer = lm.tokenizer
    longest = sorted(wide, key=lambda e: -len(tokenizer.encode(e.context, add_special_tokens=False)))
    timing_examples = longest[: args.timing_contexts]
    print(f"\ntime, {name}: one arrow pass vs K cross-encoder passes ({len(timing_examples)} contexts x "
          f"{args.repeat} repeats, contexts cut to {args.context_tokens} tokens)")
    print(f"{'K':>4} {'tokens':>7} {'one pass ms':>12} {'(cpu)':>8} {'K passes ms':>12} {'(cpu)':>9}  ratio "
          "(bound: K passes' tokens / one pass's)")
    for k in (10, 100):
        r = encoder_timing(lm, timing_examples, k, args.context_tokens, args.repeat)
        goal = 4 if k == 10 else 30
        print(f"{k:>4} {r['tokens']:>7} {r['one'] * 1e3:>12.1f} {r['one_cpu'] * 1e3:>8.1f} {r['many'] * 1e3:>12.1f} "
              f"{r['many_cpu'] * 1e3:>9.1f}  {r['ratio']:.1f}x wall {r['ratio_cpu']:.1f}x cpu (goal >= {goal}x; "
              f"bound {r['bound']:.1f}x)")


def decoder_part(args, examples: list[Example], test: list[Example]) -> None:
    texts = [e.context for e in examples] + [c for e in examples for c in e.candidates]
    lm, name = load_decoder(args.quick, texts if args.quick else [])
    print(f"\ndecoder form, {name}: each candidate's log-likelihood after the context, one pass vs K plain passes")
    if args.decoder_examples:
        quality_run = decoder_run(lm, test[: args.decoder_examples], 10, 0, True)
        print(f"K = 10, {min(len(test), args.decoder_examples)} test functions, summed log-likelihood: "
              f"{_metrics(quality_run['quality'])}; per token: {_metrics(quality_run['per_token'])}; "
              f"largest |one pass - separate| {quality_run['diff']:.2e}")
    print(f"timing contexts: sources up to {args.decoder_chars} characters")
    print(f"{'K':>4} {'tokens':>7} {'dense ms':>9} {'reuse ms':>9} {'K passes ms':>12}  dense ratio  reuse ratio")
    medium = docstring_examples(k=100, seed=1, max_chars=args.decoder_chars)
    medium = sorted(medium, key=lambda e: -len(e.context))[: args.decoder_timing_contexts]
    for k in (10, 100):
        r = decoder_run(lm, medium, k, 1, False)
        print(f"{k:>4} {r['tokens']:>7} {r['one'] * 1e3:>9.1f} {r['reuse_one'] * 1e3:>9.1f} {r['many'] * 1e3:>12.1f}  "
              f"{r['ratio']:.1f}x ({r['ratio_cpu']:.1f}x cpu)  {r['reuse_ratio']:.1f}x ({r['reuse_ratio_cpu']:.1f}x "
              f"cpu); bound {r['bound']:.1f}x; max |diff| {r['diff']:.1e}")


if __name__ == "__main__":
    main()
