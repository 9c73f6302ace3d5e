"""Ranking a plan's candidates in one call: every candidate scored from one forward, then sorted.

Works on any plan whose candidate segments (role ``candidate``, or the names given) see a shared context —
Uni-Encoder plans from :mod:`structlm.candidates` are one kind. Decoders: each candidate's log-likelihood given
what it sees (summed, or per token with ``normalize``). Encoders: each candidate's final states mean-pooled, then
a trained head (:class:`~structlm.hf.ranking_train.RankingHead`), or without one the cosine similarity with the
pooled context (the plan's first segment that is not ranked, unless ``against`` names another).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

import torch

from structlm.errors import PlanError
from structlm.plan import Plan

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from structlm.hf.model import StructuredLM

__all__ = ["Ranking", "rank", "ranked_names"]


@dataclass(frozen=True)
class Ranking:
    """Candidate names best first (``order``), and every candidate's score (``scores``, plan order)."""

    order: list[str]
    scores: dict[str, float]

    @property
    def top(self) -> str:
        """The best candidate."""
        return self.order[0]

    def position(self, name: str) -> int:
        """1-based rank of ``name``."""
        return self.order.index(name) + 1

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)

    def table(self, texts: dict[str, str] | None = None) -> str:
        """One line per candidate: rank, score, name (and text)."""
        lines = []
        for i, name in enumerate(self.order, 1):
            text = f"  {texts[name]}" if texts and name in texts else ""
            lines.append(f"{i:>3}  {self.scores[name]:>10.4f}  {name}{text}")
        return "\n".join(lines)


def ranked_names(plan: Plan, names: Iterable[str] | None = None) -> list[str]:
    """``names``, or the plan's segments with role ``candidate`` (plan order); at least one."""
    chosen = list(names) if names is not None else [s.name for s in plan if s.role == "candidate"]
    if not chosen:
        raise PlanError("nothing to rank: the plan has no segment with role 'candidate'; name the segments")
    return chosen


def rank(lm: "StructuredLM", plan: Plan, names: Iterable[str] | None = None, *,
         head: Callable[[torch.Tensor], torch.Tensor] | None = None, against: str | None = None,
         normalize: bool = False, backend: str = "auto") -> Ranking:
    """Score every candidate in one pass and sort them, best first (ties keep plan order)."""
    chosen = ranked_names(plan, names)
    if not lm.is_decoder and head is None and against is None:
        against = next((s.name for s in plan if s.name not in set(chosen)), None)
        if against is None:
            raise PlanError("an encoder without a head ranks by similarity with a context, but every segment "
                            "is a candidate; pass head= or against=")
    scores = lm.score(plan, chosen, backend=backend, against=against, normalize=normalize, head=head)
    order = sorted(chosen, key=lambda name: -scores[name])
    return Ranking(order, scores)
