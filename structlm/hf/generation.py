"""Generation on a plan: new tokens see the last segment and everything it sees, positions continue after it.

The prefill is the plan's KV schedule (dense for cyclic plans); the visible segments' keys and values are joined
once, after the first token is chosen, into a cache with room for the new tokens, so each decoding step writes in
place instead of copying the whole past.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from transformers import DynamicCache

from structlm.errors import BackendError
from structlm.hf.cache import CacheEntry
from structlm.hf.hooks import AttentionHook
from structlm.hf.room import room_cache, with_room
from structlm.masks import full_mask
from structlm.plan import Plan

if TYPE_CHECKING:  # pragma: no cover
    from structlm.hf.model import StructuredLM

__all__ = ["generate", "dense_entries", "pick_token"]


def generate(lm: "StructuredLM", plan: Plan, max_new_tokens: int = 20, do_sample: bool = False,
             temperature: float = 1.0, top_p: float = 1.0, eos_token_id: int | Sequence[int] | None = None,
             attention: AttentionHook | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """See ``StructuredLM.generate``."""
    if not lm.is_decoder:
        raise BackendError(f"{type(lm.model).__name__} is an encoder: it cannot generate")
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    if do_sample and (temperature <= 0 or not 0 < top_p <= 1):
        raise ValueError("sampling needs temperature > 0 and 0 < top_p <= 1")
    lm.check_plan(plan, extra_positions=max_new_tokens)
    if eos_token_id is None:
        eos_token_id = getattr(lm.config, "eos_token_id", None)
    eos = set([eos_token_id] if isinstance(eos_token_id, int) else (eos_token_id or []))
    last = plan.last_segment()
    visible = plan.sees(last.name) + [last.name]
    if plan.is_acyclic():
        entries = lm.executor.run(plan, lm.schedule(plan), attention=attention)[0].entries
    else:
        entries = dense_entries(lm, plan, attention)
    chosen = [entries[name] for name in visible]
    layers = len(chosen[0].keys)
    spans = plan.spans
    cols = torch.cat([torch.arange(*spans[name]) for name in visible])
    cache = None  # joined with room for the new tokens at the first decoding step: the first token needs no join
    position = last.end_position
    call = lm.call
    logits = call.head(entries[last.name].hidden[-1:])[0]
    new_tokens: list[int] = []
    unmasked = attention is None and call.plain_causal()  # no sliding window the model would apply by itself
    with torch.no_grad():
        for step in range(max_new_tokens):
            token = pick_token(logits, do_sample, temperature, top_p, generator)
            new_tokens.append(token)
            if token in eos or step == max_new_tokens - 1:
                break
            if cache is None:
                cache = room_cache([with_room([e.keys[i] for e in chosen], max_new_tokens) for i in range(layers)],
                                   [with_room([e.values[i] for e in chosen], max_new_tokens) for i in range(layers)],
                                   cols.numel())
            if unmasked:  # the new token sees the whole cache: the model's own step, as its generate makes it
                implementation, mask, extra = None, None, {}
            else:
                every = full_mask(1, cols.numel() + len(new_tokens))
                rows = generated_cols = None
                if attention is not None:  # generated tokens are -1: not in the plan
                    rows = torch.tensor([-1])
                    generated_cols = torch.cat([cols, torch.full((len(new_tokens),), -1)])
                implementation, mask, extra = call.setup(attention, every, plan, rows, generated_cols)
            dtype = torch.float32 if isinstance(position, float) else torch.long
            with call.implementation(implementation):
                out = call.base(input_ids=torch.tensor([[token]], device=lm.device), attention_mask=mask,
                               position_ids=torch.tensor([[position]], dtype=dtype, device=lm.device),
                               cache=cache, use_cache=True, **extra)
            cache = out.cache
            position += 1
            logits = call.head(out.last_hidden_state[:, -1])[0]
    return torch.tensor([new_tokens], dtype=torch.long)


def dense_entries(lm: "StructuredLM", plan: Plan, attention: AttentionHook | None) -> dict[str, CacheEntry]:
    """Per-segment keys/values from one dense forward: the prefill of a cyclic plan."""
    call = lm.call
    every = torch.arange(len(plan))
    implementation, mask, extra = call.setup(attention, plan.dense_mask("bool"), plan, every, every)
    with torch.no_grad(), call.implementation(implementation):
        out = call.base(**call.inputs(plan), attention_mask=mask, position_ids=call.positions(plan.position_ids),
                        cache=DynamicCache(), use_cache=True, **extra)
    return {
        name: CacheEntry(
            keys=[layer.keys[:, :, start:end] for layer in out.cache.layers],
            values=[layer.values[:, :, start:end] for layer in out.cache.layers],
            hidden=out.last_hidden_state[0, start:end],
            positions=plan[name].positions,
        )
        for name, (start, end) in plan.spans.items()
    }


def pick_token(logits: torch.Tensor, do_sample: bool, temperature: float, top_p: float,
               generator: torch.Generator | None) -> int:
    """Greedy, or a sample from the temperature-scaled distribution cut to its top-p nucleus."""
    if not do_sample:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, 0) - sorted_probs < top_p
        sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator).item())
