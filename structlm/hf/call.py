"""One model call: which attention implementation runs, what mask format it takes, inputs, positions, LM head.

Why apart from ``StructuredLM``: the dense and flex backends, every prefill of the KV-reuse schedule and every
generation step make the same kind of call; the details (mask type per attention implementation, RoPE-table
offsets, soft tokens, soft-capped logits) are settled here once.

Mask formats follow a small registry, like transformers' ``AttentionMaskInterface``: an attention implementation
maps to ``"bool"`` (sdpa-style), ``"additive"`` (eager-style float 0 / finfo.min; the default, since it is the
form every custom attention function can read) or ``"block"`` (a FlexAttention BlockMask).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from structlm.errors import BackendError, PlanError
from structlm.hf.hooks import AttentionHook
from structlm.hf.offload import execution_device, layer_devices, to_devices
from structlm.hf.sdpa import IMPLEMENTATION as GROUPED_SDPA
from structlm.masks import formatted
from structlm.plan import Plan
from structlm.segment import Segment

__all__ = ["MASK_KINDS", "register_mask_kind", "mask_kind", "ModelCall", "is_decoder", "position_offset"]

MASK_KINDS: dict[str, str] = {"sdpa": "bool", GROUPED_SDPA: "bool", "flex_attention": "block", "eager": "additive"}


def register_mask_kind(implementation: str, kind: str) -> None:
    """Declare the mask format an attention implementation takes (``bool``, ``additive`` or ``block``)."""
    if kind not in ("bool", "additive", "block"):
        raise ValueError(f"mask kind must be 'bool', 'additive' or 'block', got {kind!r}")
    MASK_KINDS[implementation] = kind


def mask_kind(implementation: str) -> str:
    """The mask format ``implementation`` takes; unregistered (custom) implementations get additive float."""
    return MASK_KINDS.get(implementation, "additive")


def is_decoder(model: torch.nn.Module) -> bool:
    """A model whose self-attention is causal (decoders) rather than bidirectional (BERT-style encoders)."""
    for module in model.modules():
        if hasattr(module, "is_causal") and hasattr(module, "config") and module is not model:
            return bool(module.is_causal)
    return bool(getattr(model, "can_generate", lambda: False)())


def _forward_arguments(model: torch.nn.Module) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def position_offset(model: torch.nn.Module) -> int:
    """RoBERTa-style models count positions from ``padding_idx + 1``: plan position 0 is table row pad + 1."""
    for module in model.modules():
        if hasattr(module, "create_position_ids_from_input_ids") and getattr(module, "padding_idx", None) is not None:
            return int(module.padding_idx) + 1
    return 0


class ModelCall:
    """How to call one wrapped model: attention switching, masks in the right format, inputs, positions, head."""

    def __init__(self, model: torch.nn.Module, offset: int = 0) -> None:
        self.model = model
        self.offset = int(offset)
        self.layer_devices = layer_devices(model)  # per layer, under accelerate dispatch; else None
        self._type_count: int | None = None  # token types the model embeds, read once (a signature inspection)

    # ----------------------------------------------------------------------------------------- model facts
    @property
    def config(self):
        return self.model.config

    @property
    def base(self) -> torch.nn.Module:
        """The model without its head: what prefills and decoding steps call."""
        return getattr(self.model, "base_model", self.model)

    @property
    def device(self) -> torch.device:
        """Where inputs go (under accelerate hooks: the embedding's execution device, not the meta weights)."""
        return execution_device(self.model)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def is_rotary(self) -> bool:
        """True for rotary position embeddings (positions are angles, not table rows)."""
        return getattr(self.base, "rotary_emb", None) is not None

    def plain_causal(self) -> bool:
        """Whether the model's own unmasked causal call attends like a plan's causal chain: no sliding window
        (which transformers applies by itself when it builds the mask) on any layer."""
        config = self.config
        types = getattr(config, "layer_types", None) or []
        return not getattr(config, "sliding_window", None) and all(t == "full_attention" for t in types)

    # ----------------------------------------------------------------------------------------- attention
    @contextlib.contextmanager
    def implementation(self, name: str | None) -> Iterator[str]:
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

    def masked_implementation(self, attention: AttentionHook | None = None) -> str:
        """The attention a masked call runs with: the hook's, eager as is, else sdpa without K/V expansion."""
        if attention is not None:
            return attention.implementation
        return "eager" if self.config._attn_implementation == "eager" else GROUPED_SDPA

    def setup(self, attention: AttentionHook | None, allowed: torch.Tensor, plan: Plan,
              rows: torch.Tensor | None, cols: torch.Tensor | None) -> tuple[str, torch.Tensor, dict]:
        """For one masked call: the implementation, ``allowed`` (bool) in its format on the device, hook kwargs.

        ``rows`` / ``cols`` are the plan token indices of the call's queries and keys (-1: generated tokens);
        only a hook needs them.
        """
        implementation = self.masked_implementation(attention)
        mask = formatted(allowed.to(self.device), mask_kind(implementation), self.dtype)
        extra = attention.forward_kwargs(plan, rows, cols) if attention is not None else {}
        return implementation, mask, extra

    # ----------------------------------------------------------------------------------------- inputs
    def token_types(self) -> int:
        """How many token types the model embeds (BERT: 2; RoBERTa: 1; decoders: 0, they take none)."""
        if self._type_count is None:
            count = getattr(self.config, "type_vocab_size", None)
            takes = "token_type_ids" in _forward_arguments(self.model)
            self._type_count = int(count) if count and takes else 0
        return self._type_count

    def check_token_types(self, types: torch.Tensor | None, what: str = "the plan") -> None:
        """A plan's token types must be ones the model embeds; raises ``PlanError`` naming both."""
        if types is None:
            return
        top = int(types.max())
        count = self.token_types()
        if top >= count:
            have = "takes no token types" if count == 0 else f"embeds token types 0..{count - 1}"
            raise PlanError(f"{what} asks for token type {top}, but {type(self.model).__name__} {have}; "
                            f"build the plan without token types")

    def inputs(self, plan: Plan) -> dict:
        """``input_ids``, or ``inputs_embeds`` when the plan holds soft tokens; ``token_type_ids`` when it has them."""
        if plan.has_soft_tokens:
            inputs = {"inputs_embeds": plan.inputs_embeds(self.model.get_input_embeddings(), dtype=self.dtype)}
        else:
            inputs = {"input_ids": plan.input_ids.to(self.device)}
        types = plan.token_type_ids
        if types is not None:
            self.check_token_types(types)
            inputs["token_type_ids"] = types.to(self.device)
        return inputs

    def segment_inputs(self, segment: Segment) -> dict:
        """One segment's ``input_ids`` or ``inputs_embeds`` (width checked against the model's embeddings)."""
        if segment.token_type is not None:
            types = torch.full((1, len(segment)), segment.token_type, dtype=torch.long)
            self.check_token_types(types, f"segment {segment.name!r}")
            return {**self._segment_tokens(segment), "token_type_ids": types.to(self.device)}
        return self._segment_tokens(segment)

    def _segment_tokens(self, segment: Segment) -> dict:
        if segment.is_soft:
            hidden = self.model.get_input_embeddings().weight.shape[1]
            if segment.embeds.shape[1] != hidden:
                raise PlanError(
                    f"segment {segment.name!r} has embeds of width {segment.embeds.shape[1]}, but the model's "
                    f"embeddings are {hidden} wide; project the soft tokens to {hidden}"
                )
            return {"inputs_embeds": segment.embeds.to(device=self.device, dtype=self.dtype)[None]}
        return {"input_ids": segment.input_ids.to(self.device)[None]}

    def positions(self, positions: torch.Tensor) -> torch.Tensor:
        """Plan positions as the model's position ids (shifted by the table offset, on the device)."""
        positions = positions.to(self.device)
        return positions + self.offset if self.offset else positions

    def place(self, keys: list[torch.Tensor], values: list[torch.Tensor]) -> tuple[list, list]:
        """Cached per-layer keys/values on the device where each layer runs (a store loads them on the CPU)."""
        devices = self.layer_devices or [self.device] * len(keys)
        return to_devices(list(keys), devices), to_devices(list(values), devices)

    # ----------------------------------------------------------------------------------------- outputs
    def head(self, hidden: torch.Tensor) -> torch.Tensor | None:
        """LM-head logits of ``hidden`` (soft-capped where the model does it), or None without a head."""
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        if head is None:
            return None
        logits = head(hidden)
        cap = getattr(self.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits
