"""Ranking metrics: R@k (recall at k, the paper's R10@1 …) and MRR, from scores or from rankings.

A *ranking* is a list of candidate names, best first; ``gold`` is the right candidate's name. Ties in scores keep
the input order (a stable sort), so a degenerate scorer is not rewarded by accident of ordering only when it puts
the gold first.
"""
from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["ranking", "gold_rank", "recall_at_k", "mrr", "summary"]


def ranking(scores: Mapping[str, float]) -> list[str]:
    """Candidate names by score, best first (ties keep the mapping's order)."""
    order = list(scores)
    return sorted(order, key=lambda name: -scores[name])


def gold_rank(ranked: Sequence[str], gold: str) -> int:
    """1-based rank of ``gold`` in ``ranked``."""
    try:
        return list(ranked).index(gold) + 1
    except ValueError:
        raise ValueError(f"gold candidate {gold!r} is not in the ranking ({', '.join(ranked[:5])}, ...)") from None


def _ranks(rankings: Sequence[Sequence[str]], golds: Sequence[str]) -> list[int]:
    if len(rankings) != len(golds):
        raise ValueError(f"{len(rankings)} rankings for {len(golds)} gold answers")
    if not rankings:
        raise ValueError("no rankings to measure")
    return [gold_rank(r, g) for r, g in zip(rankings, golds)]


def recall_at_k(rankings: Sequence[Sequence[str]], golds: Sequence[str], k: int = 1) -> float:
    """Share of examples whose gold candidate is among the first ``k`` (R_N@k with N candidates each)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    ranks = _ranks(rankings, golds)
    return sum(r <= k for r in ranks) / len(ranks)


def mrr(rankings: Sequence[Sequence[str]], golds: Sequence[str]) -> float:
    """Mean reciprocal rank of the gold candidate."""
    ranks = _ranks(rankings, golds)
    return sum(1.0 / r for r in ranks) / len(ranks)


def summary(rankings: Sequence[Sequence[str]], golds: Sequence[str], ks: Sequence[int] = (1, 2, 5)) -> dict[str, float]:
    """``{"R@1": …, "R@2": …, "R@5": …, "MRR": …}`` (k larger than the candidate count is left out)."""
    smallest = min(len(r) for r in rankings) if rankings else 0
    result = {f"R@{k}": recall_at_k(rankings, golds, k) for k in ks if k <= smallest}
    result["MRR"] = mrr(rankings, golds)
    return result
