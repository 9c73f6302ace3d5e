"""Group position encoding (GPE, Tong et al. 2025) as a Plan: the batch / training layout of a stream.

Two position groups: the source (prompt, then source chunks) counts from 0, the target (header, then target
chunks) from ``phi``, however reads and writes interleave. Visibility, as the paper's training mask:

* a source token sees the earlier source (causal); it never sees the target;
* a target token sees the earlier target (causal) and the source chunks the policy had read by then — with the
  **shift by one**: the row of target token ``i`` predicts token ``i + 1``, so it sees the source that was in
  when token ``i + 1`` was written. The last token of a chunk therefore sees the next chunk's source.

In segments this is exact with no token-level refinement: the target is cut where a live session computes it.
Segment ``target{w}`` holds the rows computed at write ``w`` — the last token of chunk ``w - 1`` (fed once the
next write starts) and all but the last token of chunk ``w``; it sees ``F[w]`` source chunks. The header is
fed at the first write (``F[0]``); the very last token keeps its own chunk's frontier (the paper's code does the
same). The physical order is the paper's packing, ``[source | target]``, so Hugging Face's label shift pairs
each target row with the next target token (:func:`labels`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

from structlm.errors import PlanError, PositionRangeError
from structlm.layouts import Group, Part
from structlm.plan import Plan
from structlm.stream.policy import READ, Policy, WaitK, actions, check_policy
from structlm.text import Text, bos_id, token_ids, with_bos

__all__ = ["StreamTemplate", "StreamText", "stream_text", "chunk_ids", "split_words", "frontiers", "plan",
           "labels", "GroupPositions", "check_phi"]

IGNORE = -100


@dataclass(frozen=True)
class StreamTemplate:
    """What wraps a stream: text or ids before the prompt, after the source, before and after the target.

    ``source_end`` is read as the last source chunk (the end of the user turn); ``target_start`` (the assistant
    header) is fed at the first write, so the first target token has a row to be predicted from;
    ``target_end`` closes the target in training plans (the model writes it itself in a session).
    """

    source_start: Text = ()
    source_end: Text = ()
    target_start: Text = ()
    target_end: Text = ()

    @classmethod
    def chat(cls, tokenizer, system: str | None = None) -> "StreamTemplate":
        """The tokenizer's chat template split around one user turn (the source) and one assistant turn."""
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("StreamTemplate.chat: the tokenizer has no chat_template; build a StreamTemplate "
                             "by hand")
        mark = "\u2063STRUCTLM_STREAM\u2063"
        head = [{"role": "system", "content": system}] if system else []
        user = tokenizer.apply_chat_template(head + [{"role": "user", "content": mark}], tokenize=False)
        asked = tokenizer.apply_chat_template(head + [{"role": "user", "content": mark}], tokenize=False,
                                              add_generation_prompt=True)
        full = tokenizer.apply_chat_template(head + [{"role": "user", "content": mark},
                                                     {"role": "assistant", "content": mark}], tokenize=False)
        if user.count(mark) != 1 or not asked.startswith(user) or full.count(mark) != 2:
            raise ValueError("StreamTemplate.chat: the chat template does not place one user and one assistant "
                             "message plainly; build a StreamTemplate by hand")
        start, end = user.split(mark)
        target_start = asked[len(user):]
        target_end = full.split(mark)[2]
        return cls(source_start=start, source_end=end, target_start=target_start, target_end=target_end.rstrip())


@dataclass(frozen=True)
class StreamText:
    """A stream's fixed parts as ids: the prompt segment (BOS, template start, prompt), source end, header, end."""

    prompt: torch.Tensor
    source_end: torch.Tensor
    target_start: torch.Tensor
    target_end: torch.Tensor


def stream_text(tokenizer, prompt: Text | None, template: StreamTemplate | None) -> StreamText:
    """Tokenize the fixed parts once (no special tokens inside; the tokenizer's BOS once at the very start)."""
    template = template if template is not None else StreamTemplate()
    if not isinstance(template, StreamTemplate):
        raise TypeError(f"template must be a StreamTemplate, got {type(template).__name__}")
    parts = [token_ids(tokenizer, template.source_start, "template.source_start")]
    if prompt is not None:
        parts.append(token_ids(tokenizer, prompt, "prompt"))
    head = torch.cat(parts)
    bos = bos_id(tokenizer) if tokenizer is not None else None
    if bos is not None:
        head = with_bos(head, bos)
    return StreamText(head, token_ids(tokenizer, template.source_end, "template.source_end"),
                      token_ids(tokenizer, template.target_start, "template.target_start"),
                      token_ids(tokenizer, template.target_end, "template.target_end"))


def chunk_ids(tokenizer, chunk: Text, what: str) -> torch.Tensor:
    """One chunk's ids; an empty chunk is refused (it would be a read or write of nothing)."""
    ids = token_ids(tokenizer, chunk, what)
    if ids.numel() == 0:
        raise PlanError(f"{what} is empty (after tokenization); every chunk needs at least one token — drop it or "
                        f"merge it into a neighbour")
    return ids


def split_words(text: str, leading_space: bool = True) -> list[str]:
    """Whitespace words, each with a leading space (how BPE tokenizers see a word inside running text)."""
    return [(" " + word) if leading_space else word for word in text.split()]


def check_phi(phi: Union[int, float]) -> Union[int, float]:
    """The target group's first position: any non-negative int or float."""
    if isinstance(phi, bool) or not isinstance(phi, (int, float)) or not phi >= 0 or phi != phi or phi == float("inf"):
        raise PlanError(f"phi (the target's first position) must be a non-negative finite number, got {phi!r}")
    return phi


def frontiers(policy: Policy, n_source: int, n_target: int) -> list[int]:
    """``F[j]``: how many source chunks are in when target chunk ``j`` is written (``actions`` semantics)."""
    result, n_read = [], 0
    for action in actions(policy, n_source, n_target):
        if action == READ:
            n_read += 1
        else:
            result.append(n_read)
    return result


def plan(source_chunks: Sequence[Text], target_chunks: Sequence[Text], policy: Policy | int = WaitK(3),
         phi: Union[int, float] = 0, prompt: Text | None = None, template: StreamTemplate | None = None,
         tokenizer=None, max_positions: int | None = None) -> Plan:
    """The batch / training plan of a stream under ``policy``: group positions and the shifted wait-k mask.

    ``source_chunks`` / ``target_chunks``: texts (with ``tokenizer``) or token ids, one per chunk. The template's
    ``source_end`` is read as one more source chunk and its ``target_end`` written as one more target chunk.
    ``max_positions`` (e.g. the model's ``max_position_embeddings``): refuse positions it cannot represent.
    """
    phi = check_phi(phi)
    policy = check_policy(policy)
    if isinstance(source_chunks, (str, torch.Tensor)) or isinstance(target_chunks, (str, torch.Tensor)):
        raise TypeError("source_chunks and target_chunks are lists of chunks (texts or id lists), not one text")
    fixed = stream_text(tokenizer, prompt, template)
    sources = [chunk_ids(tokenizer, c, f"source chunk {i}") for i, c in enumerate(source_chunks)]
    targets = [chunk_ids(tokenizer, c, f"target chunk {j}") for j, c in enumerate(target_chunks)]
    if not sources:
        raise PlanError("a stream needs at least one source chunk")
    if not targets:
        raise PlanError("a stream needs at least one target chunk")
    if fixed.source_end.numel():
        sources.append(fixed.source_end)
    if fixed.target_end.numel():
        targets.append(fixed.target_end)
    frontier = frontiers(policy, len(sources), len(targets))

    result = Plan()
    source = Group(0)
    names = []
    if fixed.prompt.numel():
        source.add(result, Part("prompt", input_ids=fixed.prompt, role="prompt"))
    base = list(source.members)
    for i, ids in enumerate(sources):
        is_end = fixed.source_end.numel() and i == len(sources) - 1
        names.append(source.add(result, Part("source_end" if is_end else f"source{i}", input_ids=ids,
                                             role="source")).name)
    target = Group(phi)
    if fixed.target_start.numel():
        target.add(result, Part("header", input_ids=fixed.target_start, role="header"), sees=base + names[:frontier[0]])
    for w in range(len(targets) + 1):
        rows = ([targets[w - 1][-1:]] if w else []) + ([targets[w][:-1]] if w < len(targets) else [])
        ids = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
        if ids.numel():
            seen = frontier[min(w, len(targets) - 1)]
            target.add(result, Part(f"target{w}", input_ids=ids, role="target"), sees=base + names[:seen])
    if max_positions is not None:
        top = max(source.next, target.next) - 1
        if top >= max_positions:
            raise PositionRangeError(f"the stream reaches position {top}, but the model represents positions "
                                     f"0..{max_positions - 1}; shorten the source or the target, or lower phi")
    return result


def labels(stream_plan: Plan) -> torch.Tensor:
    """``[1, N]`` training labels: the token ids of written target tokens, ``-100`` everywhere else.

    Hugging Face causal LMs shift labels by one inside the loss, so each written token is scored by the row
    before it — in a stream plan the previous target row (the header's last token for the first one). Without a
    header the first target token has no target row before it and is left out.
    """
    parts = []
    first = True
    has_header = any(s.role == "header" for s in stream_plan)
    for segment in stream_plan:
        if segment.role != "target":
            parts.append(torch.full((len(segment),), IGNORE, dtype=torch.long))
            continue
        ids = segment.input_ids.clone()
        if first and not has_header:
            ids[0] = IGNORE
        first = False
        parts.append(ids)
    if first:
        raise PlanError("the plan has no target segments: labels() takes a plan made by structlm.stream.plan")
    return torch.cat(parts)[None]


class GroupPositions:
    """The two position groups of a live stream: next source position from 0, next target position from phi."""

    def __init__(self, phi: Union[int, float] = 0) -> None:
        self.phi = check_phi(phi)
        self.source_length = 0
        self.target_length = 0

    def _range(self, start: Union[int, float], count: int) -> torch.Tensor:
        if isinstance(start, float) and not start.is_integer():
            return start + torch.arange(count, dtype=torch.float32)
        return int(start) + torch.arange(count, dtype=torch.long)

    def source(self, count: int) -> torch.Tensor:
        """Positions of the next ``count`` source tokens (and count them in)."""
        out = self._range(self.source_length, count)
        self.source_length += count
        return out

    def target(self, count: int) -> torch.Tensor:
        """Positions of the next ``count`` target tokens (and count them in)."""
        out = self._range(self.phi + self.target_length, count)
        self.target_length += count
        return out

    def drop_target(self, count: int) -> None:
        """Forget the last ``count`` target tokens (a token taken back at a word boundary)."""
        self.target_length -= count

    def highest(self, extra_source: int = 0, extra_target: int = 0) -> Union[int, float]:
        """The largest position in use once ``extra_*`` more tokens are in."""
        return max(self.source_length + extra_source, self.phi + self.target_length + extra_target) - 1
