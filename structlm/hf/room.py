"""Cache layers that write new keys/values into preallocated room instead of concatenating.

transformers' ``DynamicLayer.update`` concatenates, so a 64-token prefill on a 16k-token cache copies the whole
past again, per layer, and each decoding step does the same. A ``RoomLayer`` holds a buffer with spare room:
an update writes in place and returns views. ``JoinedContexts`` keeps the joined keys/values of the last few
sets of seen segments, so a new query over the same cached contexts joins nothing again.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

__all__ = ["RoomLayer", "room_cache", "with_room", "JoinedContexts"]


class RoomLayer(DynamicLayer):
    """A DynamicLayer over a buffer ``[B, H, capacity, D]`` of which the first ``length`` slots are filled."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self._key_buffer, self._value_buffer = keys, values
        self.length = length
        self.device = keys.device
        self.is_initialized = True
        self.keys = keys[:, :, :length]
        self.values = values[:, :, :length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        new = key_states.shape[-2]
        end = self.length + new
        if end > self._key_buffer.shape[-2]:  # out of room: grow by doubling (rare)
            grow = max(end, 2 * self._key_buffer.shape[-2]) - self._key_buffer.shape[-2]
            pad = (*self._key_buffer.shape[:2], grow, self._key_buffer.shape[-1])
            self._key_buffer = torch.cat([self._key_buffer, self._key_buffer.new_empty(pad)], dim=-2)
            pad = (*self._value_buffer.shape[:2], grow, self._value_buffer.shape[-1])
            self._value_buffer = torch.cat([self._value_buffer, self._value_buffer.new_empty(pad)], dim=-2)
        self._key_buffer[:, :, self.length:end] = key_states
        self._value_buffer[:, :, self.length:end] = value_states
        self.length = end
        self.keys = self._key_buffer[:, :, :end]
        self.values = self._value_buffer[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        self.length = max(0, self.length + tokens_to_remove)
        self.keys = self._key_buffer[:, :, : self.length]
        self.values = self._value_buffer[:, :, : self.length]


def with_room(parts: Sequence[torch.Tensor], room: int) -> torch.Tensor:
    first = parts[0]
    total = sum(p.shape[-2] for p in parts)
    buffer = first.new_empty((*first.shape[:2], total + room, first.shape[-1]))
    offset = 0
    for part in parts:
        buffer[:, :, offset: offset + part.shape[-2]] = part
        offset += part.shape[-2]
    return buffer


def room_cache(keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor], length: int) -> DynamicCache:
    """A cache over per-layer buffers whose first ``length`` slots hold the past."""
    cache = DynamicCache()
    cache.layers = [RoomLayer(k, v, length) for k, v in zip(keys, values)]
    return cache


class JoinedContexts:
    """Joined per-layer keys/values of sets of segments (by their cache keys), with room after them."""

    def __init__(self, max_sets: int = 2) -> None:
        self.max_sets = max_sets
        self._joined: OrderedDict[tuple[str, ...], tuple[list[torch.Tensor], list[torch.Tensor], int]] = OrderedDict()

    def cache_for(self, segment_keys: tuple[str, ...], parts: Callable[[], tuple[list, list]], room: int) -> DynamicCache:
        """A room cache holding the segments' keys/values; built once per set, then reused."""
        held = self._joined.get(segment_keys)
        if held is None or held[0][0].shape[-2] - held[2] < room:
            layer_keys, layer_values = parts()  # lists (per layer) of lists (per segment)
            past = sum(t.shape[-2] for t in layer_keys[0])
            room = max(room, 128)
            held = ([with_room(k, room) for k in layer_keys], [with_room(v, room) for v in layer_values], past)
            self._joined[segment_keys] = held
            while len(self._joined) > self.max_sets:
                self._joined.popitem(last=False)
        self._joined.move_to_end(segment_keys)
        keys, values, past = held
        return room_cache(keys, values, past)

    def clear(self) -> None:
        self._joined.clear()
