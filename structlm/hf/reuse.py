"""The KV-reuse executor: a plan's schedule run segment by segment, each on a cache of exactly what it sees.

When visibility between segments is acyclic, a segment's keys and values depend only on itself and the
segments it sees. So each segment is one prefill on top of a cache holding those segments (their per-layer
keys/values joined), with the mask rows of :func:`structlm.masks.segment_prefill_mask`. The result is the dense
forward's, and each segment's entry goes to the content-addressed :class:`~structlm.hf.cache.SegmentCache`, so
any later plan in which the segment has the same tokens, positions and visible set reuses it. With
``reposition`` a cached segment at other positions is re-rotated instead of recomputed.

A run of uncached segments that sees nothing else and forms one ordinary causal prompt
(:func:`structlm.masks.causal_chain`: a sequential prompt, or a prefix and the first context after it) is
encoded in one plain causal call and split into per-segment entries afterwards: the same numbers as a plain
prefill, at its cost (no per-segment joins of the growing past, causal attention that skips the upper triangle).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import DynamicCache

from structlm.hf.cache import CacheEntry, SegmentCache, segment_key
from structlm.hf.call import ModelCall
from structlm.hf.hooks import AttentionHook, affected_segments
from structlm.hf.room import JoinedContexts
from structlm.hf.rope import rerotate_keys
from structlm.masks import chain_continues, segment_prefill_mask
from structlm.plan import Plan
from structlm.segment import Segment

__all__ = ["PlanState", "join_entries", "ReuseExecutor"]


def join_entries(entries: Sequence[CacheEntry]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-layer keys and values of ``entries`` concatenated along the sequence, in order."""
    if not entries:
        return [], []
    if len(entries) == 1:
        return list(entries[0].keys), list(entries[0].values)
    layers = len(entries[0].keys)
    keys = [torch.cat([e.keys[i] for e in entries], dim=-2) for i in range(layers)]
    values = [torch.cat([e.values[i] for e in entries], dim=-2) for i in range(layers)]
    return keys, values


def _plain_tokens(segment: Segment) -> bool:
    """Token ids without a token type: what one plain causal call over a chain of segments can take."""
    return not segment.is_soft and segment.token_type is None


def _per_layer(entries: Sequence[CacheEntry]) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """Per layer, the keys (and values) of each entry, in order: what a joined cache is built from."""
    layers = len(entries[0].keys)
    return [[e.keys[i] for e in entries] for i in range(layers)], [[e.values[i] for e in entries] for i in range(layers)]


@dataclass
class PlanState:
    """A prefilled plan: each segment's cached keys/values and final hidden states, by name."""

    plan: Plan
    entries: dict[str, CacheEntry]
    keys: dict[str, str]

    def joined(self, names: Sequence[str]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-layer keys and values of the named segments, concatenated in the given order."""
        return join_entries([self.entries[n] for n in names])

    def to_cache(self, names: Sequence[str] | None = None) -> DynamicCache:
        """A transformers ``DynamicCache`` of the named segments (default: the whole plan, in plan order).

        Keys carry their rotary positions already, so the cache can be continued by any forward that passes
        explicit position ids and a mask over these tokens.
        """
        keys, values = self.joined(list(names) if names is not None else self.plan.names)
        return DynamicCache(list(zip(keys, values)))

    def hidden(self) -> torch.Tensor:
        """``[1, N, H]`` final hidden states of every token, in plan order."""
        return torch.cat([self.entries[name].hidden for name in self.plan.names])[None]


class ReuseExecutor:
    """Runs plans' schedules for one model on one cache; counts re-positioned reuses."""

    def __init__(self, call: ModelCall, cache: SegmentCache, fingerprint: str, reposition: str = "off") -> None:
        if reposition not in ("off", "exact", "any"):
            raise ValueError(f"reposition must be 'off', 'exact' or 'any', got {reposition!r}")
        self.call = call
        self.cache = cache
        self.fingerprint = fingerprint
        self.reposition = reposition
        self.repositioned = 0
        self.joined = JoinedContexts()

    def run(self, plan: Plan, levels: list[list[str]], attention: AttentionHook | None = None,
            output_hidden_states: bool = False, use_cache: bool = True) -> tuple[PlanState, dict[str, tuple]]:
        """Encode every segment level by level (``levels`` = ``plan.schedule()``, the plan already checked).

        Returns the plan's state and, with ``output_hidden_states``, each segment's per-layer hidden states.
        Segments a hook changes are recomputed, not cached.
        """
        state: dict[str, CacheEntry] = {}
        keys: dict[str, str] = {}
        layer_states: dict[str, tuple] = {}
        touched = affected_segments(attention, plan)
        order = [name for level in levels for name in level]
        lookups: dict[str, tuple] = {}

        def look(name: str) -> tuple:
            """(key, content key or None, cached entry or None) of one segment, computed once."""
            if name not in lookups:
                segment = plan[name]
                seen = plan.sees(name)
                tokens = segment.embeds if segment.is_soft else segment.input_ids
                seen_keys = [keys[s] for s in seen]
                keys[name] = segment_key(self.fingerprint, tokens, segment.positions, segment.causal, seen_keys,
                                         token_type=segment.token_type)
                entry = content_key = None
                if use_cache and name not in touched:
                    content_key = segment_key(self.fingerprint, tokens, segment.positions, segment.causal,
                                              seen_keys, include_positions=False, token_type=segment.token_type)
                    if not output_hidden_states:
                        entry = self._lookup(segment, keys[name], content_key, seen)
                        if entry is not None:
                            entry = self._placed(entry)
                lookups[name] = (keys[name], content_key, entry)
            return lookups[name]

        with torch.no_grad():
            for index, name in enumerate(order):
                if name in state:
                    continue
                key, content_key, entry = look(name)
                if entry is None:
                    plain = attention is None and not output_hidden_states
                    run = self._chain(plan, order, index, look) if plain else None
                    if run:
                        encoded = self._encode_chain(plan, run)
                    else:
                        seen = plan.sees(name)
                        encoded = {}
                        encoded[name], hidden_states = self._encode(plan, plan[name], seen, state,
                                                                    [keys[s] for s in seen], output_hidden_states,
                                                                    attention)
                        if hidden_states is not None:
                            layer_states[name] = hidden_states
                    for done, done_entry in encoded.items():
                        done_key, done_content, _ = look(done)
                        if use_cache and done not in touched:
                            self.cache.put(done_key, done_entry, content_key=done_content)
                        state[done] = done_entry
                else:
                    state[name] = entry
        return PlanState(plan=plan, entries=state, keys=keys), layer_states

    def _chain(self, plan: Plan, order: list[str], index: int, look) -> list[str] | None:
        """The longest run of uncached segments from ``order[index]`` that is one plain causal prompt seeing
        nothing before it (a single causal segment counts); None when ``order[index]`` starts none."""
        first = order[index]
        if not _plain_tokens(plan[first]) or not chain_continues(plan, [], first) or not self.call.plain_causal():
            return None
        run = [first]
        for name in order[index + 1:]:
            if not _plain_tokens(plan[name]) or not chain_continues(plan, run, name) or look(name)[2] is not None:
                break
            run.append(name)
        return run

    def _encode_chain(self, plan: Plan, run: list[str]) -> dict[str, CacheEntry]:
        """Encode a :func:`~structlm.masks.causal_chain` run in one call with the model's own causal attention
        (no mask: its mask is exactly the plain causal one, positions a plain range), split per segment."""
        call = self.call
        segments = [plan[name] for name in run]
        ids = torch.cat([s.input_ids for s in segments]).to(call.device)[None]
        positions = call.positions(torch.cat([s.positions for s in segments]))[None]
        out = call.base(input_ids=ids, attention_mask=None, position_ids=positions, cache=DynamicCache(),
                        use_cache=True)
        layers = out.cache.layers
        entries, start = {}, 0
        for segment in segments:
            end = start + len(segment)
            entries[segment.name] = CacheEntry(keys=[layer.keys[:, :, start:end] for layer in layers],
                                               values=[layer.values[:, :, start:end] for layer in layers],
                                               hidden=out.last_hidden_state[0, start:end],
                                               positions=segment.positions.clone())
            start = end
        return entries

    def _encode(self, plan: Plan, segment: Segment, seen: list[str], state: dict[str, CacheEntry],
                seen_keys: list[str], output_hidden_states: bool,
                attention: AttentionHook | None) -> tuple[CacheEntry, tuple | None]:
        """Prefill one segment on top of a cache holding exactly the segments it sees."""
        call = self.call
        seen_entries = [state[name] for name in seen]
        past = sum(len(e) for e in seen_entries)
        rows = cols = None
        if attention is not None:  # the hook needs the plan indices of this call's rows and keys
            spans = plan.spans
            rows = torch.arange(*spans[segment.name])
            cols = torch.cat([torch.arange(*spans[name]) for name in seen] + [rows])
        allowed = segment_prefill_mask(plan, segment.name, seen)
        implementation, mask, extra = call.setup(attention, allowed, plan, rows, cols)
        if past:
            cache = self.joined.cache_for(tuple(seen_keys), lambda: _per_layer(seen_entries), room=len(segment))
        else:
            cache = DynamicCache()
        with call.implementation(implementation):
            out = call.base(**call.segment_inputs(segment), attention_mask=mask,
                            position_ids=call.positions(segment.positions)[None], cache=cache, use_cache=True,
                            output_hidden_states=output_hidden_states, **extra)
        layers = out.cache.layers
        entry = CacheEntry(
            keys=[layer.keys[:, :, past:].clone() for layer in layers],
            values=[layer.values[:, :, past:].clone() for layer in layers],
            hidden=out.last_hidden_state[0],
            positions=segment.positions.clone(),
        )
        return entry, (out.hidden_states if output_hidden_states else None)

    def _placed(self, entry: CacheEntry) -> CacheEntry:
        """A cached entry with keys/values where their layers run and hidden states on the input device."""
        keys, values = self.call.place(entry.keys, entry.values)
        hidden = entry.hidden
        device = self.call.device
        if hidden is not None and hidden.device != device:
            hidden = hidden.to(device)
        if hidden is entry.hidden and all(a is b for a, b in zip(keys + values, entry.keys + entry.values)):
            return entry
        return CacheEntry(keys=keys, values=values, hidden=hidden, positions=entry.positions, meta=entry.meta)

    def _lookup(self, segment: Segment, key: str, content_key: str, seen: list[str]) -> CacheEntry | None:
        """The cached entry under ``key``; with ``reposition``, one at other positions re-rotated to these."""
        entry = self.cache.get(key)
        if entry is not None or self.reposition == "off" or segment.is_soft:
            return entry
        if self.reposition == "exact" and seen:
            return None
        moved = self.cache.get_by_content(content_key)
        if moved is None or moved.positions.dtype != segment.positions.dtype:
            return None
        delta = segment.positions - moved.positions
        if not bool((delta == delta[0]).all()):
            return None  # not a plain shift: re-rotation would not reproduce these positions
        self.repositioned += 1
        self.cache.count_moved_hit()
        return CacheEntry(keys=rerotate_keys(self.call.model, moved.keys, delta[0].item()), values=list(moved.values),
                          hidden=moved.hidden, positions=segment.positions.clone())
