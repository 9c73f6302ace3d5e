"""What a forward returns, and which tokens get logits (the LM head is often the largest cost)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch
from transformers.utils import ModelOutput

from structlm.plan import Plan

__all__ = ["StructuredOutput", "LogitsFor", "logit_rows"]

LogitsFor = Union[str, Sequence[str], torch.Tensor]


@dataclass
class StructuredOutput(ModelOutput):
    """Outputs for the tokens of a plan, in plan order (batch dimension 1).

    ``logits`` covers every token, or — with ``logits_for`` — only the tokens in ``logits_index`` (their plan
    token indices, ascending).
    """

    logits: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    backend: str | None = None
    logits_index: torch.Tensor | None = None


def logit_rows(plan: Plan, logits_for: LogitsFor) -> torch.Tensor | None:
    """Plan token indices whose logits are wanted: None for ``"all"``, empty for ``"none"``, the last token for
    ``"last"``, every token of the named segments, or given token indices (a tensor) — ascending, unique."""
    if isinstance(logits_for, torch.Tensor):
        rows = torch.unique(logits_for.reshape(-1).to(torch.long))
        if rows.numel() and not (0 <= int(rows[0]) and int(rows[-1]) < len(plan)):
            raise ValueError(f"logits_for token indices must lie in [0, {len(plan)})")
        return rows
    if isinstance(logits_for, str):
        if logits_for == "all":
            return None
        if logits_for == "none":
            return torch.zeros(0, dtype=torch.long)
        if logits_for == "last":
            return torch.tensor([len(plan) - 1])
        raise ValueError(f"logits_for must be 'all', 'last', 'none' or a list of segment names, got {logits_for!r}")
    spans = plan.spans
    rows = []
    for name in logits_for:
        plan[name]  # unknown names raise with the known ones listed
        rows.append(torch.arange(*spans[name]))
    return torch.unique(torch.cat(rows)) if rows else torch.zeros(0, dtype=torch.long)
