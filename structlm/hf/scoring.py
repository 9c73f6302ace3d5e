"""Scores of plan segments: log-likelihoods on decoders, pooled similarity on encoders — all in one forward.

Why one forward: every scored segment (a candidate, a continuation) sees only its context, so their scores are
independent of each other and can be read from the same pass; only the logits that score something are computed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

import torch

from structlm.errors import BackendError, PlanError
from structlm.hf.hooks import AttentionHook
from structlm.plan import Plan

if TYPE_CHECKING:  # pragma: no cover - annotations only; the model module imports this one lazily
    from structlm.hf.model import StructuredLM

__all__ = ["score", "scored_rows", "pooled"]


def scored_rows(plan: Plan, names: Iterable[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per segment: the plan rows whose logits predict its tokens, and those tokens.

    Token i > 0 is predicted by token i-1 of the segment; the first token by the last token of the last segment it
    sees (left out when it sees nothing).
    """
    spans = plan.spans
    result = {}
    for name in names:
        segment = plan[name]
        if segment.is_soft:
            raise PlanError(f"segment {name!r} holds soft tokens: only token ids can be scored")
        start, end = spans[name]
        rows = torch.arange(start, end - 1)
        targets = segment.input_ids[1:]
        seen = plan.sees(name)
        if seen:
            rows = torch.cat([torch.tensor([spans[seen[-1]][1] - 1]), rows])
            targets = segment.input_ids
        result[name] = (rows, targets)
    return result


def pooled(states: torch.Tensor, plan: Plan, names: Iterable[str]) -> torch.Tensor:
    """``[K, H]``: the mean of ``states [N, H]`` over each named segment's tokens (all of them, as Uni-Encoder)."""
    spans = plan.spans
    return torch.stack([states[slice(*spans[name])].mean(0) for name in names])


def score(lm: "StructuredLM", plan: Plan, segment_names: Iterable[str] | None = None, backend: str = "auto",
          against: str | None = None, attention: AttentionHook | None = None,
          normalize: bool = False, head: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
    """See :meth:`StructuredLM.score`."""
    names = list(segment_names) if segment_names is not None else plan.names
    for name in names:
        plan[name]
    if not lm.is_decoder:
        if against is None and head is None:
            raise ValueError("encoders score by similarity or by a head: name the segment to compare with, e.g. "
                             "against='query', or pass head=")
        states = lm.forward(plan, backend=backend, attention=attention, logits_for="none").last_hidden_state[0]
        vectors = pooled(states, plan, names)
        if head is not None:
            with torch.no_grad():
                values = head(vectors).reshape(len(names))
            return dict(zip(names, values.tolist()))
        anchor = pooled(states, plan, [against])[0]
        values = torch.nn.functional.cosine_similarity(vectors, anchor[None], dim=-1)
        return dict(zip(names, values.tolist()))
    if head is not None:
        raise ValueError("head= is for encoders (pooled states -> logit); a decoder scores by log-likelihood")
    wanted = scored_rows(plan, names)
    every = torch.cat([rows for rows, _ in wanted.values()] + [torch.zeros(0, dtype=torch.long)])
    out = lm.forward(plan, backend=backend, attention=attention, logits_for=every)
    if out.logits is None:
        raise BackendError(f"{type(lm.model).__name__} has no LM head: scoring needs token logits")
    logprobs = torch.log_softmax(out.logits[0].float(), dim=-1)
    index = out.logits_index
    result = {}
    for name, (rows, targets) in wanted.items():
        at = torch.searchsorted(index, rows).to(logprobs.device)
        total = logprobs[at].gather(1, targets.to(logprobs.device)[:, None]).sum()
        result[name] = (total / max(len(rows), 1)).item() if normalize else total.item()
    return result
