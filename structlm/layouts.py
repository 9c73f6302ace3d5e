"""The shared layouts: where segments sit (positions) and what they see (edges), written once.

Every front-end is a composition of three patterns:

* a **chain** (:class:`Group`, :func:`chain`): parts one after another at consecutive positions, each seeing
  every earlier part of the chain — the ordinary prompt (RAG ``sequential``, NT-LLM node tokens, UniXcoder's
  source → target). Several groups can grow interleaved in physical order while each keeps its own position
  range: group position encoding for streams (source from 0, target from φ).
* a **shared start** (:func:`shared_start`): siblings that all start at one position and see only a common base
  — APE / PCW parallel contexts, Graph-KV sources, Uni-Encoder candidates. Reordering siblings changes nothing
  any of them computes.
* **rounds** (:func:`round_starts`, :func:`rounds`): Graph-KV's multi-hop layout, where a target is placed after
  the sources it sees and chunks wait for the rounds before them.

A :class:`Part` is a segment without a position yet; the layouts give it one and add it to the plan.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from structlm.errors import PlanError
from structlm.plan import Plan, Segment

__all__ = ["Part", "Group", "chain", "shared_start", "round_starts", "rounds"]


@dataclass(frozen=True)
class Part:
    """A segment waiting for its position: a name, token ids or embeddings (soft tokens), a role, the intra rule
    and (for BERT-style models) a token type."""

    name: str
    input_ids: Any = None
    embeds: Any = None
    role: str = "text"
    causal: bool = True
    token_type: int | None = None

    def __len__(self) -> int:
        tokens = self.input_ids if self.input_ids is not None else self.embeds
        return len(tokens) if tokens is not None else 0

    def at(self, start: int | float) -> Segment:
        """The segment with positions ``start, start + 1, …``."""
        return Segment(self.name, input_ids=self.input_ids, embeds=self.embeds, start=start, causal=self.causal,
                       role=self.role, token_type=self.token_type)


class Group:
    """A position range that grows part by part; each new part sees ``sees`` and every earlier part of the group.

    Parts of one group are contiguous in positions wherever they sit physically, so two groups can be interleaved
    (a stream's source and target chunks) and each still reads as one ordinary sequence to the model.
    """

    def __init__(self, start: int | float = 0, sees: Sequence[str] = ()) -> None:
        if isinstance(start, bool) or not isinstance(start, (int, float)) or start < 0:
            raise PlanError(f"a group starts at a non-negative position, got {start!r}")
        self.next = start
        self.sees = list(sees)
        self.members: list[str] = []

    def add(self, plan: Plan, part: Part, sees: Iterable[str] = ()) -> Segment:
        """Append ``part`` at the group's next position; it also sees the extra segments ``sees``."""
        extra = [name for name in sees if name not in self.sees and name not in self.members]
        segment = plan.add(part.at(self.next), sees=self.sees + extra + self.members)
        self.members.append(segment.name)
        self.next = segment.end_position
        return segment


def chain(plan: Plan, parts: Iterable[Part], start: int | float = 0, sees: Sequence[str] = ()) -> int | float:
    """Parts one after another at consecutive positions, each seeing ``sees`` and every earlier part.

    Returns the next free position (where a continuation starts).
    """
    group = Group(start, sees)
    for part in parts:
        group.add(plan, part)
    return group.next


def shared_start(plan: Plan, parts: Iterable[Part], start: int | float = 0, sees: Sequence[str] = ()) -> int | float:
    """Siblings: every part starts at ``start`` and sees only ``sees`` (and itself by its intra rule).

    Returns ``start`` plus the longest sibling: the first position after all of them.
    """
    end = start
    for part in parts:
        segment = plan.add(part.at(start), sees=list(sees))
        end = max(end, segment.end_position)
    return end


def round_starts(lengths: Sequence[int], sources: Sequence[Sequence[int]], round_of: Sequence[int],
                 base: int = 0, spacing: str = "tight") -> list[int]:
    """Start position of each chunk in a rounds layout.

    ``spacing="tight"``: a chunk without sources starts at ``base``; a target right after its longest source,
    ``max over sources s of (start(s) + len(s))``. ``spacing="rounds"``: round t at ``base + t·L`` with L the
    longest chunk (the Graph-KV paper's formula). Both agree when chunks have equal length.
    """
    if spacing not in ("tight", "rounds"):
        raise ValueError(f"spacing must be 'tight' or 'rounds', got {spacing!r}")
    longest = max(lengths, default=0)
    starts = [0] * len(lengths)
    for i in sorted(range(len(lengths)), key=lambda i: (round_of[i], i)):
        if spacing == "rounds":
            starts[i] = base + round_of[i] * longest
        else:
            starts[i] = max((starts[s] + lengths[s] for s in sources[i]), default=base)
    return starts


def rounds(plan: Plan, parts: Sequence[Part], sources: Sequence[Sequence[int]], round_of: Sequence[int],
           base: int = 0, sees: Sequence[str] = (), spacing: str = "tight",
           roles: Mapping[int, str] | None = None) -> int:
    """Add chunks by round (then by index): each sees ``sees`` and its sources; positions by :func:`round_starts`.

    A chunk of round 0 gets role ``source`` and a later one ``target`` unless ``roles`` says otherwise. Returns
    the first position after every chunk.
    """
    starts = round_starts([len(p) for p in parts], sources, round_of, base, spacing)
    order = sorted(range(len(parts)), key=lambda i: (round_of[i], i))
    for i in order:
        role = (roles or {}).get(i, "source" if round_of[i] == 0 else "target")
        seen = list(sees) + [parts[s].name for s in sorted(sources[i], key=lambda s: (round_of[s], s))]
        part = parts[i]
        plan.add(Segment(part.name, input_ids=part.input_ids, embeds=part.embeds, start=starts[i],
                         causal=part.causal, role=role, token_type=part.token_type), sees=seen)
    return max((starts[i] + len(parts[i]) for i in order), default=base)
