"""StructuredLM: execute any Plan on a Hugging Face model, with the same numbers on every backend.

Backends
- ``dense``: one forward with a 4D mask of the right type (bool for sdpa, additive float for eager and custom
  attention) and the plan's position ids.
- ``flex``: one forward with the plan's FlexAttention BlockMask (compiled; on CPU inference only).
- ``reuse``: the plan's schedule. Each segment is a prefill on top of a cache holding exactly the segments it
  sees; its keys and values go to a content-addressed SegmentCache and are reused by later plans.
- ``auto``: reuse for acyclic plans on decoders, flex for large plans, dense otherwise.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
from transformers import DynamicCache
from transformers.utils import ModelOutput

from structlm.hf.cache import CacheEntry, SegmentCache, model_fingerprint, segment_key
from structlm.hf.errors import BackendError, PositionRangeError
from structlm.hf.room import JoinedContexts
from structlm.hf.rope import rerotate_keys
from structlm.hf.sdpa import IMPLEMENTATION as GROUPED_SDPA
from structlm.masks import to_additive
from structlm.plan import Plan, PlanError, Segment

__all__ = ["StructuredLM", "StructuredOutput", "PlanState"]

BACKENDS = ("auto", "dense", "flex", "reuse")
FLEX_AUTO_TOKENS = 8192


@dataclass
class StructuredOutput(ModelOutput):
    """Outputs for every token of a plan, in plan order (batch dimension 1)."""

    logits: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    backend: str | None = None


@dataclass
class PlanState:
    """A prefilled plan: each segment's cached keys/values and final hidden states, by name."""

    plan: Plan
    entries: dict[str, CacheEntry]
    keys: dict[str, str]

    def joined(self, names: Sequence[str]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-layer keys and values of the named segments, concatenated in the given order."""
        return _join([self.entries[n] for n in names])

    def to_cache(self, names: Sequence[str] | None = None) -> DynamicCache:
        """A transformers ``DynamicCache`` of the named segments (default: the whole plan, in plan order).

        Keys carry their rotary positions already, so the cache can be continued by any forward that passes
        explicit position ids and a mask over these tokens.
        """
        keys, values = self.joined(list(names) if names is not None else self.plan.names)
        return DynamicCache(list(zip(keys, values)))


def _parts(entries: Sequence[CacheEntry]) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """Per layer, the keys (and values) of each entry, in order: what a joined cache is built from."""
    layers = len(entries[0].keys)
    return [[e.keys[i] for e in entries] for i in range(layers)], [[e.values[i] for e in entries] for i in range(layers)]


def _join(entries: Sequence[CacheEntry]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if not entries:
        return [], []
    layers = len(entries[0].keys)
    if len(entries) == 1:
        return list(entries[0].keys), list(entries[0].values)
    keys = [torch.cat([e.keys[i] for e in entries], dim=-2) for i in range(layers)]
    values = [torch.cat([e.values[i] for e in entries], dim=-2) for i in range(layers)]
    return keys, values


def _is_decoder(model: torch.nn.Module) -> bool:
    """A model whose self-attention is causal (decoders) rather than bidirectional (BERT-style encoders)."""
    for module in model.modules():
        if hasattr(module, "is_causal") and hasattr(module, "config") and module is not model:
            return bool(module.is_causal)
    return bool(getattr(model, "can_generate", lambda: False)())


def _position_offset(model: torch.nn.Module) -> int:
    """RoBERTa-style models count positions from ``padding_idx + 1``: plan position 0 is table row pad + 1."""
    for module in model.modules():
        if hasattr(module, "create_position_ids_from_input_ids") and getattr(module, "padding_idx", None) is not None:
            return int(module.padding_idx) + 1
    return 0


class StructuredLM:
    """Wraps a transformers model (decoder or encoder) and executes Plans on it.

    >>> lm = StructuredLM.from_pretrained("path/or/hub-id")             # doctest: +SKIP
    >>> out = lm.forward(plan)                                         # logits for every token, plan order
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any = None,
        cache: SegmentCache | None = None,
        reposition: str = "off",
        strict_positions: bool = True,
        flex_block_size: int = 128,
        position_offset: int | None = None,
    ) -> None:
        if reposition not in ("off", "exact", "any"):
            raise ValueError(f"reposition must be 'off', 'exact' or 'any', got {reposition!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.is_decoder = _is_decoder(model)
        self.fingerprint = model_fingerprint(model)
        self.cache = cache if cache is not None else SegmentCache()
        self.cache.bind(self.fingerprint)
        self.reposition = reposition
        self.strict_positions = strict_positions
        self.flex_block_size = flex_block_size
        self.repositioned = 0
        self._joined = JoinedContexts()
        self.position_offset = _position_offset(model) if position_offset is None else int(position_offset)

    @classmethod
    def from_pretrained(cls, name_or_path: str, tokenizer: bool | Any = True, attn_implementation: str = "sdpa",
                        dtype: torch.dtype | None = None, **kwargs) -> "StructuredLM":
        """Load a model (causal LM when the checkpoint has one, else the bare encoder) and its tokenizer."""
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

        wrapper_keys = {"cache", "reposition", "strict_positions", "flex_block_size", "position_offset"}
        wrapper_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in wrapper_keys}
        config = AutoConfig.from_pretrained(name_or_path)
        load = dict(attn_implementation=attn_implementation, **kwargs)
        if dtype is not None:
            load["dtype"] = dtype
        architectures = getattr(config, "architectures", None) or []
        if any("CausalLM" in a for a in architectures):
            model = AutoModelForCausalLM.from_pretrained(name_or_path, **load)
        else:
            model = AutoModel.from_pretrained(name_or_path, **load)
        if tokenizer is True:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        elif tokenizer is False:
            tokenizer = None
        return cls(model, tokenizer=tokenizer, **wrapper_kwargs)

    # ----------------------------------------------------------------------------------------- basics
    @property
    def config(self):
        """The wrapped model's config."""
        return self.model.config

    @property
    def device(self) -> torch.device:
        """Where the model's weights live (inputs are moved there)."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The model's weight dtype (additive masks and soft tokens use it)."""
        return next(self.model.parameters()).dtype

    def __repr__(self) -> str:
        kind = "decoder" if self.is_decoder else "encoder"
        return (f"StructuredLM({type(self.model).__name__}, {kind}, attn={self.config._attn_implementation}, "
                f"{self.cache!r})")

    @property
    def _base(self) -> torch.nn.Module:
        return getattr(self.model, "base_model", self.model)

    def _head(self, hidden: torch.Tensor) -> torch.Tensor | None:
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        if head is None:
            return None
        logits = head(hidden)
        cap = getattr(self.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    @contextlib.contextmanager
    def _implementation(self, name: str | None):
        """Switch the attention implementation for one call and restore it afterwards."""
        current = self.config._attn_implementation
        if name is None or name == current:
            yield current
            return
        try:
            self.model.set_attn_implementation(name)
        except (ValueError, ImportError) as error:
            raise BackendError(f"{type(self.model).__name__} cannot use attention {name!r}: {error}") from error
        try:
            yield name
        finally:
            self.model.set_attn_implementation(current)

    def _format_mask(self, mask: torch.Tensor, kind: str) -> torch.Tensor:
        mask = mask.to(self.device)
        return mask if kind == "bool" else to_additive(mask, self.dtype)

    def _dense_implementation(self, attention) -> str:
        """The attention a masked call runs with: the hook's, eager as is, else sdpa without K/V expansion."""
        if attention is not None:
            return attention.implementation
        current = self.config._attn_implementation
        return "eager" if current == "eager" else GROUPED_SDPA

    def _call_setup(self, attention, allowed: torch.Tensor, plan: Plan, rows: torch.Tensor | None,
                    cols: torch.Tensor | None):
        """For one masked model call: the attention implementation, the mask in its format, and hook kwargs."""
        implementation = self._dense_implementation(attention)
        kind = "additive" if attention is not None else self._mask_kind(implementation)
        extra = attention.forward_kwargs(plan, rows, cols) if attention is not None else {}
        return implementation, self._format_mask(allowed, kind), extra

    def _mask_kind(self, implementation: str) -> str:
        return "bool" if implementation in ("sdpa", GROUPED_SDPA) else "additive"

    # ----------------------------------------------------------------------------------------- checks
    def check_plan(self, plan: Plan, extra_positions: int = 0) -> None:
        """Positions the model can represent, and inputs it can take; raises with what to change."""
        if not isinstance(plan, Plan):
            raise PlanError(f"expected a Plan, got {type(plan).__name__}")
        plan._require_segments()
        positions = plan.position_ids
        if positions.is_floating_point() and not self._is_rotary():
            raise PositionRangeError(
                f"{type(self.model).__name__} has a table of absolute positions: fractional positions cannot be "
                f"looked up; use integer positions"
            )
        low = positions.min().item()
        high = positions.max().item() + extra_positions + self.position_offset
        limit = getattr(self.config, "max_position_embeddings", None)
        if low < 0:
            raise PositionRangeError(f"plan has negative positions (min {low}); positions start at 0")
        if limit is not None and high >= limit and (self.strict_positions or not self._is_rotary()):
            raise PositionRangeError(
                f"plan uses position {high}, but {type(self.model).__name__} has max_position_embeddings={limit}; "
                f"reuse positions (parallel segments) or shorten the plan"
                + ("" if not self._is_rotary() else ", or pass strict_positions=False to extrapolate RoPE")
            )
        vocab = getattr(self.config, "vocab_size", None)
        if vocab is not None and not plan.has_soft_tokens:
            top = plan.input_ids.max().item()
            if top >= vocab:
                raise PlanError(f"plan holds token id {top}, but the model's vocabulary has {vocab} ids")

    def _is_rotary(self) -> bool:
        return getattr(self._base, "rotary_emb", None) is not None

    # ----------------------------------------------------------------------------------------- inputs
    def _inputs(self, plan: Plan) -> dict:
        if plan.has_soft_tokens:
            return {"inputs_embeds": plan.inputs_embeds(self.model.get_input_embeddings(), dtype=self.dtype)}
        return {"input_ids": plan.input_ids.to(self.device)}

    def _segment_inputs(self, segment: Segment) -> dict:
        if segment.is_soft:
            embeddings = self.model.get_input_embeddings()
            hidden = embeddings.weight.shape[1]
            if segment.embeds.shape[1] != hidden:
                raise PlanError(
                    f"segment {segment.name!r} has embeds of width {segment.embeds.shape[1]}, but the model's "
                    f"embeddings are {hidden} wide; project the soft tokens to {hidden}"
                )
            return {"inputs_embeds": segment.embeds.to(device=self.device, dtype=self.dtype)[None]}
        return {"input_ids": segment.input_ids.to(self.device)[None]}

    def _positions(self, positions: torch.Tensor) -> torch.Tensor:
        positions = positions.to(self.device)
        return positions + self.position_offset if self.position_offset else positions

    # ----------------------------------------------------------------------------------------- forward
    def choose_backend(self, plan: Plan, output_hidden_states: bool = False) -> str:
        """What ``backend="auto"`` runs: reuse for acyclic decoder plans, flex for large plans, else dense."""
        if self.is_decoder and not output_hidden_states and plan.is_acyclic():
            return "reuse"
        if len(plan) >= FLEX_AUTO_TOKENS and self._flex_available():
            tiles = plan.block_mask(block_size=self.flex_block_size)
            if tiles.sparsity() >= 50.0:  # percent of tiles skipped: worth a compile
                return "flex"
        return "dense"

    def _flex_available(self) -> bool:
        """Flex needs model support, and on CPU a C++ compiler for the compiled kernel."""
        import shutil

        if not getattr(self.model, "_supports_flex_attn", False):
            return False
        return self.device.type != "cpu" or bool(shutil.which("g++") or shutil.which("c++"))

    def forward(
        self,
        plan: Plan | Sequence[Plan],
        backend: str = "auto",
        output_hidden_states: bool = False,
        attention: Any = None,
    ) -> StructuredOutput | list[StructuredOutput]:
        """Logits (and hidden states) for every token, in plan order; a list of plans gives a list of outputs."""
        if isinstance(plan, (list, tuple)):
            return self._forward_batch(list(plan), backend, output_hidden_states, attention)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.check_plan(plan)
        if backend == "auto":
            backend = self.choose_backend(plan, output_hidden_states)
        with torch.no_grad():
            if backend == "dense":
                out = self._dense(plan, output_hidden_states, attention)
            elif backend == "flex":
                if attention is not None:
                    raise BackendError("custom attention (e.g. APE) runs on the dense and reuse backends, not flex")
                out = self._flex(plan, output_hidden_states)
            else:
                out = self._reuse_forward(plan, output_hidden_states, attention)
        out.backend = backend
        return out

    __call__ = forward

    def _dense(self, plan: Plan, output_hidden_states: bool, attention) -> StructuredOutput:
        every = torch.arange(len(plan))
        implementation, mask, extra = self._call_setup(attention, plan.dense_mask("bool"), plan, every, every)
        return self._run_full(plan, mask, implementation, output_hidden_states, extra)

    def _flex(self, plan: Plan, output_hidden_states: bool) -> StructuredOutput:
        block = plan.block_mask(block_size=self.flex_block_size, device=self.device)
        with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
            return self._run_full(plan, block, "flex_attention", output_hidden_states, {})

    def _run_full(self, plan: Plan, mask, implementation: str, output_hidden_states: bool, extra: dict):
        inputs = self._inputs(plan)
        positions = self._positions(plan.position_ids)
        with self._implementation(implementation):
            if self.is_decoder:
                out = self._base(**inputs, attention_mask=mask, position_ids=positions, use_cache=False,
                                 output_hidden_states=output_hidden_states, **extra)
                hidden = out.last_hidden_state
                return StructuredOutput(logits=self._head(hidden), last_hidden_state=hidden,
                                        hidden_states=out.hidden_states if output_hidden_states else None)
            out = self.model(**inputs, attention_mask=mask, position_ids=positions,
                             output_hidden_states=True, **extra)
        hidden_states = out.hidden_states
        last = getattr(out, "last_hidden_state", None)
        if last is None:
            last = hidden_states[-1]
        return StructuredOutput(logits=getattr(out, "logits", None), last_hidden_state=last,
                                hidden_states=hidden_states if output_hidden_states else None)

    # ----------------------------------------------------------------------------------------- reuse
    def _require_reuse(self, plan: Plan) -> list[list[str]]:
        if not self.is_decoder:
            raise BackendError(
                f"{type(self.model).__name__} is an encoder: every token sees the whole segment, so segments "
                f"cannot be encoded one after another; use backend='dense' or 'flex'"
            )
        return plan.schedule()  # raises PlanError naming the cycle

    def _segment_tokens(self, segment: Segment) -> torch.Tensor:
        return segment.embeds if segment.is_soft else segment.input_ids

    def _encode_segment(self, plan: Plan, segment: Segment, seen: list[str], state: dict[str, CacheEntry],
                        seen_keys: list[str], output_hidden_states: bool, attention) -> tuple[CacheEntry, tuple | None]:
        """Prefill one segment on top of a cache holding exactly the segments it sees."""
        seen_entries = [state[name] for name in seen]
        past = sum(len(e) for e in seen_entries)
        length = len(segment)
        own = torch.ones(length, length, dtype=torch.bool)
        if segment.causal:
            own = torch.tril(own)
        allowed = torch.cat([torch.ones(length, past, dtype=torch.bool), own], dim=1)[None, None]
        own_rows = cols = None
        if attention is not None:  # the hook needs the plan indices of this call's rows and keys
            spans = plan.spans
            own_rows = torch.arange(*spans[segment.name])
            cols = torch.cat([torch.arange(*spans[name]) for name in seen] + [own_rows])
        implementation, mask, extra = self._call_setup(attention, allowed, plan, own_rows, cols)
        if past:
            cache = self._joined.cache_for(tuple(seen_keys), lambda: _parts(seen_entries), room=length)
        else:
            cache = DynamicCache()
        with self._implementation(implementation):
            out = self._base(**self._segment_inputs(segment), attention_mask=mask,
                             position_ids=self._positions(segment.positions)[None], cache=cache, use_cache=True,
                             output_hidden_states=output_hidden_states, **extra)
        layers = out.cache.layers
        entry = CacheEntry(
            keys=[layer.keys[:, :, past:].clone() for layer in layers],
            values=[layer.values[:, :, past:].clone() for layer in layers],
            hidden=out.last_hidden_state[0],
            positions=segment.positions.clone(),
        )
        return entry, (out.hidden_states if output_hidden_states else None)

    def _lookup(self, segment: Segment, key: str, content_key: str, seen: list[str]) -> CacheEntry | None:
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
        shift = delta[0].item()
        self.repositioned += 1
        self.cache.count_moved_hit()
        return CacheEntry(keys=rerotate_keys(self.model, moved.keys, shift), values=list(moved.values),
                          hidden=moved.hidden, positions=segment.positions.clone())

    def prefill(self, plan: Plan, attention: Any = None, use_cache: bool = True) -> PlanState:
        """Encode every segment in dependency order, reusing cached segments: each segment's keys, values and
        final hidden states, by name (what ``generate`` continues from)."""
        levels = self._require_reuse(plan)
        self.check_plan(plan)
        return self._prefill(plan, attention=attention, use_cache=use_cache, levels=levels)[0]

    def _prefill(self, plan: Plan, attention: Any = None, output_hidden_states: bool = False,
                 use_cache: bool = True, levels: list[list[str]] | None = None) -> tuple[PlanState, dict[str, tuple]]:
        """The schedule run on a plan its caller has already checked."""
        levels = levels if levels is not None else self._require_reuse(plan)
        state: dict[str, CacheEntry] = {}
        keys: dict[str, str] = {}
        layer_states: dict[str, tuple] = {}
        # custom attention changes the keys/values a segment produces only for rows it applies to; such
        # segments are recomputed rather than mixed with plain cached ones
        # (a hook without ``affected_segments`` is assumed to touch every segment: nothing is cached then)
        touched: set[str] = set()
        if attention is not None:
            affected = getattr(attention, "affected_segments", None)
            touched = set(affected(plan)) if affected is not None else set(plan.names)
        with torch.no_grad():
            for level in levels:
                for name in level:
                    segment = plan[name]
                    seen = plan.sees(name)
                    tokens = self._segment_tokens(segment)
                    seen_keys = [keys[s] for s in seen]
                    key = segment_key(self.fingerprint, tokens, segment.positions, segment.causal, seen_keys)
                    keys[name] = key
                    cacheable = use_cache and name not in touched
                    entry = None
                    if cacheable:
                        content_key = segment_key(self.fingerprint, tokens, segment.positions, segment.causal,
                                                  seen_keys, include_positions=False)
                    if cacheable and not output_hidden_states:
                        entry = self._lookup(segment, key, content_key, seen)
                    if entry is None:
                        entry, hidden_states = self._encode_segment(plan, segment, seen, state, seen_keys,
                                                                    output_hidden_states, attention)
                        if hidden_states is not None:
                            layer_states[name] = hidden_states
                        if cacheable:
                            self.cache.put(key, entry, content_key=content_key)
                    state[name] = entry
        return PlanState(plan=plan, entries=state, keys=keys), layer_states

    def _reuse_forward(self, plan: Plan, output_hidden_states: bool, attention) -> StructuredOutput:
        plan_state, layer_states = self._prefill(plan, attention=attention, output_hidden_states=output_hidden_states)
        hidden = torch.cat([plan_state.entries[name].hidden for name in plan.names])[None]
        hidden_states = None
        if output_hidden_states:
            count = len(next(iter(layer_states.values())))
            hidden_states = tuple(
                torch.cat([layer_states[name][i][0] for name in plan.names])[None] for i in range(count)
            )
        return StructuredOutput(logits=self._head(hidden), last_hidden_state=hidden, hidden_states=hidden_states)

    # ----------------------------------------------------------------------------------------- batches
    def _forward_batch(self, plans: list[Plan], backend: str, output_hidden_states: bool, attention):
        """Dense plans are padded and run as one batch; other backends run plan by plan (same numbers)."""
        if not plans:
            return []
        chosen = {self.choose_backend(p, output_hidden_states) if backend == "auto" else backend for p in plans}
        if chosen != {"dense"} or attention is not None or len(plans) == 1:
            return [self.forward(p, backend=backend, output_hidden_states=output_hidden_states, attention=attention)
                    for p in plans]
        for plan in plans:
            self.check_plan(plan)
        longest = max(len(p) for p in plans)
        implementation = self._dense_implementation(None)
        kind = self._mask_kind(implementation)
        masks, positions, embeds = [], [], []
        embedding = self.model.get_input_embeddings()
        float_positions = any(p.position_ids.is_floating_point() for p in plans)
        for plan in plans:
            n = len(plan)
            mask = torch.eye(longest, dtype=torch.bool)  # padding rows see themselves: no empty softmax rows
            mask[:n, :n] = plan.dense_mask("bool")[0, 0]
            mask[:n, n:] = False
            masks.append(mask)
            pos = torch.zeros(longest, dtype=torch.float32 if float_positions else torch.long)
            pos[:n] = plan.position_ids[0]
            positions.append(pos)
            inputs = plan.inputs_embeds(embedding, dtype=self.dtype)[0]
            embeds.append(torch.cat([inputs, inputs.new_zeros(longest - n, inputs.shape[-1])]))
        mask = self._format_mask(torch.stack(masks)[:, None], kind)
        batch_positions = self._positions(torch.stack(positions))
        batch_embeds = torch.stack(embeds)
        with torch.no_grad(), self._implementation(implementation):
            if self.is_decoder:
                out = self._base(inputs_embeds=batch_embeds, attention_mask=mask, position_ids=batch_positions,
                                 use_cache=False, output_hidden_states=output_hidden_states)
                logits = self._head(out.last_hidden_state)
                last = out.last_hidden_state
            else:
                out = self.model(inputs_embeds=batch_embeds, attention_mask=mask, position_ids=batch_positions,
                                 output_hidden_states=True)
                logits = getattr(out, "logits", None)
                last = getattr(out, "last_hidden_state", None)
                last = out.hidden_states[-1] if last is None else last
        results = []
        for i, plan in enumerate(plans):
            n = len(plan)
            results.append(StructuredOutput(
                logits=None if logits is None else logits[i: i + 1, :n],
                last_hidden_state=last[i: i + 1, :n],
                hidden_states=tuple(h[i: i + 1, :n] for h in out.hidden_states) if output_hidden_states else None,
                backend="dense",
            ))
        return results

    # ----------------------------------------------------------------------------------------- uses
    def hidden_states(self, plan: Plan, layers: Iterable[int] | None = None, backend: str = "dense") -> dict[int, torch.Tensor]:
        """Per-layer hidden states ``[N, H]`` in plan order (0 = embeddings), for probes."""
        out = self.forward(plan, backend=backend, output_hidden_states=True)
        states = out.hidden_states
        chosen = range(len(states)) if layers is None else list(layers)
        result = {}
        for layer in chosen:
            if not -len(states) <= layer < len(states):
                raise ValueError(f"layer {layer} out of range: the model has {len(states)} hidden states (0..{len(states) - 1})")
            result[layer] = states[layer][0]
        return result

    def score(self, plan: Plan, segment_names: Iterable[str] | None = None, backend: str = "auto",
              against: str | None = None, attention: Any = None) -> dict[str, float]:
        """Decoders: summed log-likelihood of each named segment's tokens given what it sees.

        Token i > 0 is scored by the logits of token i-1 of its own segment; the first token by the last token
        of the last segment it sees (its shared context), and is left out when it sees nothing.
        Encoders: cosine similarity of each segment's mean-pooled final states with segment ``against``.
        """
        names = list(segment_names) if segment_names is not None else plan.names
        for name in names:
            plan[name]
        out = self.forward(plan, backend=backend, attention=attention)
        spans = plan.spans
        if not self.is_decoder:
            if against is None:
                raise ValueError("encoders score by similarity: name the segment to compare with, e.g. against='query'")
            states = out.last_hidden_state[0]
            anchor_state = states[slice(*spans[against])].mean(0)
            return {
                name: torch.nn.functional.cosine_similarity(states[slice(*spans[name])].mean(0), anchor_state, dim=0).item()
                for name in names
            }
        if out.logits is None:
            raise BackendError(f"{type(self.model).__name__} has no LM head: scoring needs token logits")
        logprobs = torch.log_softmax(out.logits[0].float(), dim=-1)
        result = {}
        for name in names:
            segment = plan[name]
            if segment.is_soft:
                raise PlanError(f"segment {name!r} holds soft tokens: only token ids can be scored")
            start, end = spans[name]
            ids = segment.input_ids.to(logprobs.device)
            total = logprobs[start: end - 1].gather(1, ids[1:, None]).sum()
            seen = plan.sees(name)
            if seen:
                context_end = spans[seen[-1]][1]
                total = total + logprobs[context_end - 1, ids[0]]
            result[name] = total.item()
        return result

    def generate(
        self,
        plan: Plan,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        eos_token_id: int | Sequence[int] | None = None,
        attention: Any = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """New tokens ``[1, T]``: they see the last segment and everything it sees; positions continue after it.

        Greedy by default; ``do_sample`` with ``temperature`` / ``top_p`` (and a ``generator`` for seeds).
        """
        from structlm.hf.generation import generate

        return generate(self, plan, max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature,
                        top_p=top_p, eos_token_id=eos_token_id, attention=attention, generator=generator)
