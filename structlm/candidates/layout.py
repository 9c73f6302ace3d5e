"""Uni-Encoder (Song et al., Findings of ACL 2023) as a Plan: a context and every candidate in one pass.

Layout (H = context length, Lᵢ = length of candidate i), the paper's code:

* the context at positions ``0..H-1`` (token type 0); every candidate at ``H..H+Lᵢ-1`` — all candidates share one
  position range, so none is favoured by where it sits (token type 1); candidates keep their input order and have
  role ``candidate``;
* encoder form (BERT-style tokenizers): ``[CLS] context [SEP]`` and ``[CLS] candidate [SEP]`` each, all
  bidirectional; decoder form (causal LMs): the BOS rule of :mod:`structlm.text`, every segment causal.

Masks (``c`` context, ``rᵢ`` candidate i; ✓ = may attend):

=========== ======= ========= ======= ======= =========== ============================================
mask        c → c   c → rᵢ    rᵢ → c  rᵢ → rᵢ rᵢ → rⱼ      what it is
=========== ======= ========= ======= ======= =========== ============================================
``arrow``   ✓       ✓ (all)   ✓       ✓       ✗           Uni-Encoder; candidates meet via the context
``diag``    ✓       ✗         ✗       ✓       ✗           a bi-encoder (each side alone)
``square``  ✓       ✓         ✓       ✓       ✓           everything sees everything (a cross-encoder at K=1)
``no-peek`` ✓       ✗         ✓       ✓       ✗           candidates independent; the context's KV reusable
=========== ======= ========= ======= ======= =========== ============================================

The decoder form is the causal ``no-peek``: the context causal, each candidate causal over itself after the
whole context — exactly "the context, then this candidate" for every candidate at once. There a context cannot
look ahead, so ``arrow`` and ``no-peek`` give the same plan, ``diag`` scores each candidate with no context (an
unconditional likelihood, the usual calibration baseline), and ``square`` has no causal form.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from structlm.errors import PlanError, PositionRangeError
from structlm.layouts import Part, shared_start
from structlm.plan import Plan
from structlm.text import Text, prefix_ids, token_ids

__all__ = ["MASKS", "uni_encoder", "candidate_names", "is_decoder_kind", "context_name"]

MASKS = ("arrow", "diag", "square", "no-peek")
CONTEXT = "context"


def is_decoder_kind(tokenizer=None, model=None) -> bool:
    """Whether to build the decoder form: from the model when given (a ``StructuredLM``'s ``is_decoder``, or a
    transformers model that can generate), else from the tokenizer (no ``[CLS]``/``[SEP]``: a causal LM's)."""
    if model is not None:
        flag = getattr(model, "is_decoder", None)
        if isinstance(flag, bool) and not isinstance(model, torch.nn.Module):  # a StructuredLM
            return flag
        can_generate = getattr(_unwrap(model), "can_generate", None)
        return bool(can_generate()) if callable(can_generate) else False
    if tokenizer is None:
        return False
    return getattr(tokenizer, "cls_token_id", None) is None or getattr(tokenizer, "sep_token_id", None) is None


def _unwrap(model) -> Any:
    """The transformers model (a ``StructuredLM`` holds it as ``.model``)."""
    return model if isinstance(model, torch.nn.Module) else getattr(model, "model", model)


def _config(model) -> Any:
    return getattr(_unwrap(model), "config", None) if model is not None else None


def _type_count(model) -> int:
    import inspect

    config = _config(model)
    forward = getattr(_unwrap(model), "forward", None)
    if config is None or forward is None:
        return 0
    takes = "token_type_ids" in inspect.signature(forward).parameters
    return int(getattr(config, "type_vocab_size", 0) or 0) if takes else 0


def _position_limit(model, max_positions: int | None) -> int | None:
    if max_positions is not None:
        return int(max_positions)
    config = _config(model)
    limit = getattr(config, "max_position_embeddings", None) if config is not None else None
    if limit is None:
        return None
    offset = getattr(model, "position_offset", None)  # a StructuredLM knows RoBERTa's pad + 1
    return int(limit) - (int(offset) if isinstance(offset, int) else 0)


def _encoder_ids(tokenizer, value: Text, what: str) -> torch.Tensor:
    """``[CLS] text [SEP]`` for a string (the tokenizer's own special tokens); token ids as they are."""
    if isinstance(value, str):
        if tokenizer is None:
            raise PlanError(f"{what} is text but no tokenizer was given; pass a tokenizer or token ids")
        if not value.strip() or not len(token_ids(tokenizer, value, what)):
            raise PlanError(f"{what} is empty: give it at least one token")
        return torch.tensor(tokenizer.encode(value, add_special_tokens=True), dtype=torch.long)
    return token_ids(tokenizer, value, what)


def uni_encoder(
    tokenizer,
    context: Text,
    candidates: Sequence[Text],
    mask: str = "arrow",
    decoder: bool | None = None,
    *,
    model: Any = None,
    token_types: bool | None = None,
    names: Sequence[str] | None = None,
    max_positions: int | None = None,
) -> Plan:
    """The context and every candidate in one plan; see the module docstring for positions and masks.

    ``decoder``: the causal form for LMs (True), the paper's bidirectional form (False), or from ``model`` /
    the tokenizer (None). ``token_types``: 0 for the context and 1 for candidates where the model has them
    (None: in the encoder form when the model — or, without one, the tokenizer — uses them). ``model``
    (a ``StructuredLM`` or transformers model, optional) also bounds the positions; ``max_positions`` sets the
    bound directly. Segments: ``context`` (role ``context``) and ``names`` (default ``candidate0``, …, role
    ``candidate``), in input order.
    """
    if mask not in MASKS:
        raise PlanError(f"mask must be one of {', '.join(MASKS)}, got {mask!r}")
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise PlanError("candidates must be a list of texts or token-id lists, not a single "
                        f"{type(candidates).__name__}")
    if not candidates:
        raise PlanError("no candidates: give at least one candidate to rank")
    names = [f"candidate{i}" for i in range(len(candidates))] if names is None else list(names)
    if len(names) != len(candidates):
        raise PlanError(f"{len(names)} names for {len(candidates)} candidates")
    if CONTEXT in names:
        raise PlanError(f"a candidate cannot be named {CONTEXT!r}: the context has that name")
    decoder = is_decoder_kind(tokenizer, model) if decoder is None else bool(decoder)
    if decoder and mask == "square":
        raise PlanError("mask 'square' has no decoder form (candidates cannot all see each other causally); "
                        "use 'arrow' / 'no-peek' (each candidate after the context) or 'diag'")
    types = _token_types(tokenizer, model, decoder, token_types)

    if tokenizer is None and any(isinstance(t, str) for t in [context, *candidates]):
        raise PlanError("the context or a candidate is text but no tokenizer was given; pass a tokenizer or token ids")
    if decoder:
        context_ids = prefix_ids(tokenizer, context, add_bos=None) if isinstance(context, str) else \
            token_ids(tokenizer, context, "the context")
        candidate_ids = [token_ids(tokenizer, c, f"candidate {i}") for i, c in enumerate(candidates)]
    else:
        context_ids = _encoder_ids(tokenizer, context, "the context")
        candidate_ids = [_encoder_ids(tokenizer, c, f"candidate {i}") for i, c in enumerate(candidates)]
    if not len(context_ids):
        raise PlanError("the context is empty: give it at least one token")
    _check_candidates(candidate_ids, names)
    _check_lengths(len(context_ids), candidate_ids, names, _position_limit(model, max_positions))

    plan = Plan()
    plan.add(Part(CONTEXT, context_ids, role="context", causal=decoder,
                  token_type=0 if types else None).at(0))
    parts = [Part(name, ids, role="candidate", causal=decoder, token_type=1 if types else None)
             for name, ids in zip(names, candidate_ids)]
    sees = [] if mask == "diag" else [CONTEXT]
    shared_start(plan, parts, start=len(context_ids), sees=sees)
    if not decoder and mask in ("arrow", "square"):
        plan.see(CONTEXT, names)
    if not decoder and mask == "square":
        for name in names:
            plan.see(name, [other for other in names if other != name])
    return plan


def _token_types(tokenizer, model, decoder: bool, asked: bool | None) -> bool:
    if model is not None:
        available = _type_count(model) >= 2
        why = f"{type(_unwrap(model)).__name__} has no second token type"
    elif tokenizer is not None:
        available = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
        why = "the tokenizer produces no token_type_ids"
    else:  # token ids alone: nothing to check against; types only when asked for
        available, why = asked is not None and bool(asked), ""
    if asked is None:
        return available and not decoder
    if asked and decoder:
        raise PlanError("token types were asked for the decoder form: causal LMs take no token_type_ids")
    if asked and not available:
        raise PlanError(f"token types were asked for, but {why}; pass token_types=False")
    return bool(asked)


def _check_candidates(candidate_ids: list[torch.Tensor], names: list[str]) -> None:
    seen: dict[tuple[int, ...], int] = {}
    for i, ids in enumerate(candidate_ids):
        if not len(ids):
            raise PlanError(f"candidate {i} ({names[i]!r}) is empty: every candidate needs at least one token")
        key = tuple(ids.tolist())
        if key in seen:
            raise PlanError(f"candidates {seen[key]} and {i} ({names[seen[key]]!r}, {names[i]!r}) are the same "
                            f"tokens: drop the duplicate, a ranking needs distinct candidates")
        seen[key] = i


def _check_lengths(context: int, candidate_ids: list[torch.Tensor], names: list[str], limit: int | None) -> None:
    if limit is None:
        return
    if context >= limit:
        raise PositionRangeError(f"the context has {context} tokens, but the model has {limit} positions and each "
                                 f"candidate comes after it: shorten the context (keep its end)")
    for name, ids in zip(names, candidate_ids):
        if context + len(ids) > limit:
            raise PositionRangeError(
                f"candidate {name!r} has {len(ids)} tokens: after the {context}-token context it needs positions up "
                f"to {context + len(ids) - 1}, but the model has {limit}; shorten the candidate or the context")


def candidate_names(plan: Plan) -> list[str]:
    """The plan's candidates (role ``candidate``) in plan order: what to score and rank."""
    return [s.name for s in plan if s.role == "candidate"]


def context_name(plan: Plan) -> str:
    """The context segment's name (the plan's first segment that is not a candidate)."""
    for segment in plan:
        if segment.role != "candidate":
            return segment.name
    raise PlanError("the plan has no context segment")
