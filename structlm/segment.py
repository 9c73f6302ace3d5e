"""Segment: a contiguous run of tokens (ids or soft-token embeddings) with its positions and intra rule.

Checked once when made, so every later consumer (masks, the runtime, JSON) can trust its fields.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from structlm.errors import PlanError

__all__ = ["Segment"]


def _as_1d_ids(values: Any, name: str) -> torch.Tensor:
    ids = torch.as_tensor(values)
    if ids.dim() == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.dim() != 1:
        raise PlanError(f"segment {name!r}: input_ids must be one sequence of token ids, got shape {tuple(ids.shape)}")
    if ids.numel() and (ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool):
        raise PlanError(f"segment {name!r}: input_ids must be integers, got {ids.dtype}")
    ids = ids.to(torch.long)
    if ids.numel() and int(ids.min()) < 0:
        raise PlanError(f"segment {name!r}: input_ids must be non-negative token ids")
    return ids


def _as_positions(values: Any, name: str) -> torch.Tensor:
    positions = torch.as_tensor(values)
    if positions.dim() != 1:
        raise PlanError(f"segment {name!r}: positions must be a 1-D vector, got shape {tuple(positions.shape)}")
    if positions.dtype == torch.bool or positions.is_complex():
        raise PlanError(f"segment {name!r}: positions must be integers or floats, got {positions.dtype}")
    if positions.is_floating_point():
        if not bool(torch.isfinite(positions).all()):
            raise PlanError(f"segment {name!r}: positions must be finite")
        return positions.to(torch.float32) if positions.dtype != torch.float64 else positions
    return positions.to(torch.long)


@dataclass(eq=False)
class Segment:
    """A contiguous run of tokens: ids, or embeddings (soft tokens), with their positions.

    ``positions`` defaults to ``start + arange(len)``; any explicit integer or float vector is allowed.
    ``causal=True``: a token sees the earlier tokens of its own segment; ``False``: all tokens of it.
    ``token_type``: the segment id BERT-style models embed (``token_type_ids``); None leaves the model's default.
    """

    name: str
    input_ids: torch.Tensor | None = None
    embeds: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    causal: bool = True
    role: str = "text"
    token_type: int | None = None
    start: int = field(default=0, repr=False)

    def __init__(
        self,
        name: str,
        input_ids: Sequence[int] | torch.Tensor | None = None,
        *,
        embeds: torch.Tensor | None = None,
        positions: Sequence[int] | Sequence[float] | torch.Tensor | None = None,
        start: int = 0,
        causal: bool = True,
        role: str = "text",
        token_type: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise PlanError(f"a segment needs a non-empty string name, got {name!r}")
        if (input_ids is None) == (embeds is None):
            raise PlanError(
                f"segment {name!r}: give exactly one of input_ids (token ids) or embeds (soft tokens), "
                f"got {'both' if input_ids is not None else 'neither'}"
            )
        self.name = name
        self.role = str(role)
        self.causal = bool(causal)
        if token_type is not None and (isinstance(token_type, bool) or not isinstance(token_type, int)
                                       or token_type < 0):
            raise PlanError(f"segment {name!r}: token_type must be a non-negative integer or None, got {token_type!r}")
        self.token_type = token_type
        if input_ids is not None:
            self.input_ids = _as_1d_ids(input_ids, name)
            self.embeds = None
            length = self.input_ids.numel()
        else:
            embeds = torch.as_tensor(embeds)
            if embeds.dim() == 3 and embeds.shape[0] == 1:
                embeds = embeds[0]
            if embeds.dim() != 2 or not embeds.is_floating_point():
                raise PlanError(
                    f"segment {name!r}: embeds must be a float tensor [len, hidden], got {embeds.dtype} {tuple(embeds.shape)}"
                )
            if not bool(torch.isfinite(embeds).all()):
                raise PlanError(f"segment {name!r}: embeds hold NaN or infinite values")
            self.input_ids = None
            self.embeds = embeds
            length = embeds.shape[0]
        if length == 0:
            raise PlanError(f"segment {name!r} is empty: every segment needs at least one token")
        if positions is None:
            if isinstance(start, bool) or not isinstance(start, (int, float)) or start < 0:
                raise PlanError(f"segment {name!r}: start must be a non-negative number, got {start!r}")
            if isinstance(start, float) and not start.is_integer():
                self.positions = start + torch.arange(length, dtype=torch.float32)
            else:
                self.positions = int(start) + torch.arange(length, dtype=torch.long)
        else:
            self.positions = _as_positions(positions, name)
            if self.positions.numel() != length:
                raise PlanError(
                    f"segment {name!r}: {self.positions.numel()} positions for {length} tokens; give one position per token"
                )
        self.start = self.positions[0].item()

    def __len__(self) -> int:
        return self.positions.numel()

    @property
    def is_soft(self) -> bool:
        """True when the segment holds embeddings (soft tokens) instead of token ids."""
        return self.embeds is not None

    @property
    def end_position(self) -> float | int:
        """One past the largest position: where a continuation of this segment starts."""
        top = self.positions.max().item()
        return top + 1

    def same_content(self, other: "Segment") -> bool:
        """Same tokens (or embeddings), positions, intra rule, role and token type — names aside."""
        if self.causal != other.causal or self.role != other.role or len(self) != len(other):
            return False
        if self.token_type != other.token_type:
            return False
        if self.is_soft != other.is_soft:
            return False
        if self.positions.dtype != other.positions.dtype or not torch.equal(self.positions, other.positions):
            return False
        if self.is_soft:
            return self.embeds.shape == other.embeds.shape and torch.equal(self.embeds, other.embeds)
        return torch.equal(self.input_ids, other.input_ids)

    def __repr__(self) -> str:
        kind = f"embeds[{self.embeds.shape[1]}]" if self.is_soft else "ids"
        first, last = self.positions[0].item(), self.positions[-1].item()
        rule = "causal" if self.causal else "full"
        types = "" if self.token_type is None else f", token_type={self.token_type}"
        return (f"Segment({self.name!r}, role={self.role!r}, len={len(self)}, {kind}, positions {first}..{last}, "
                f"{rule}{types})")
