"""APE (Adaptive Parallel Encoding) as a transformers attention function — no monkeypatching.

Why a registered attention function: APE changes only how query (and generated) tokens weigh the keys of
parallel-encoded contexts; everything else (projections, RoPE, caches, masks) stays the model's own. So one
function registered through ``transformers.AttentionInterface`` serves every decoder that dispatches attention
through the interface (Llama, Qwen2, Mistral, Gemma 2/3, Phi-3, …), with the reuse and dense backends alike.

The formula (per head, for an APE row q; s_j = q·k_j · scaling, after Gemma-style soft-capping; C = visible
context keys, O = every other visible key — prefix, query, generated tokens):

    Z_C = Σ_{j∈C} exp(s_j / T),  Z_O = Σ_{j∈O} exp(s_j)
    a_j = exp(s_j / T) · Z_C^(e−1) / (Z_C^e + Z_O)   for j ∈ C
    a_j = exp(s_j)                 / (Z_C^e + Z_O)   for j ∈ O

the official code computes two partial attentions merged by their log-sum-exps,
``out = softmax([e·lse_C, lse_O]) · [O_C, O_O]``; here the same weights come from one fp32 softmax over
``s_j/T + (e−1)·lse_C`` (context) and ``s_j`` (others), whose normaliser is ``Z_C^e + Z_O``. The exponent e
depends on the convention:

* ``convention="repo"`` (default; the official Infini-AI-Lab/APE code and its README defaults T = S = 0.9):
  ``e = S·T`` (the code multiplies ``lse_C`` by ``scale * temperature``);
* ``convention="paper"`` (the paper's pseudo-code, ``lse_context * scale``): ``e = S``.

So ``APE(T, S, "repo") == APE(T, S·T, "paper")``. With T = S = 1, e = 1 and the weights are a plain softmax over
every visible key: plain parallel attention, exactly (up to fp rounding).

Where it applies (the rule, checked per call from plan roles):

* rows: tokens of segments whose role is in ``query_roles`` (default ``("query",)``) and generated tokens
  (plan index −1). Rows of every other segment — prefix, contexts, Graph-KV sources/targets — use plain
  attention, so T and S never apply during context encoding and cached contexts stay valid with or without APE.
* keys: "context" keys are tokens of segments whose role is in ``context_roles`` (default ``("context",)``);
  add ``"source"``/``"target"`` to apply APE over Graph-KV chunks.
* the additive mask the runtime passes decides visibility; APE only re-weights what is visible.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # pragma: no cover
    from structlm.plan import Plan

__all__ = ["APE", "ApeCall", "ape_attention", "IMPLEMENTATION", "KWARG", "register"]

IMPLEMENTATION = "structlm_ape"
KWARG = "structlm_ape"
_UNSET = object()


@dataclass(frozen=True)
class ApeCall:
    """What one model call needs: which query rows are APE rows, which key columns are context, T and e."""

    rows: torch.Tensor  # [q] bool
    context: torch.Tensor  # [kv] bool
    temperature: float
    exponent: float


@dataclass(frozen=True)
class APE:
    """The APE attention hook: pass it as ``attention=`` to ``StructuredLM.forward / prefill / generate``.

    ``temperature`` (T) sharpens query→context attention; ``scale`` (S) sets the weight of the whole context block
    against the prefix and query (see the module docstring for both conventions).
    """

    temperature: float = 0.9
    scale: float = 0.9
    convention: str = "repo"
    context_roles: tuple[str, ...] = ("context",)
    query_roles: tuple[str, ...] = ("query",)
    implementation: ClassVar[str] = IMPLEMENTATION

    def __post_init__(self) -> None:
        for knob in ("temperature", "scale"):
            value = getattr(self, knob)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"APE {knob} must be a positive finite number, got {value!r}")
        if self.convention not in ("repo", "paper"):
            raise ValueError(f"APE convention must be 'repo' (e = S·T, official code) or 'paper' (e = S), "
                             f"got {self.convention!r}")
        for knob in ("context_roles", "query_roles"):
            roles = getattr(self, knob)
            if isinstance(roles, str) or not all(isinstance(r, str) for r in roles):
                raise TypeError(f"APE {knob} must be a tuple of role names, got {roles!r}")
            object.__setattr__(self, knob, tuple(roles))
        if set(self.context_roles) & set(self.query_roles):
            both = sorted(set(self.context_roles) & set(self.query_roles))
            raise ValueError(f"APE roles {both} are both context and query")
        register()

    @property
    def exponent(self) -> float:
        """The power e on Z_C: S·T (repo) or S (paper)."""
        return self.scale * self.temperature if self.convention == "repo" else self.scale

    def affected_segments(self, plan: "Plan") -> list[str]:
        """Segments whose outputs APE changes (query roles); every other segment may come from the cache."""
        return [s.name for s in plan if s.role in self.query_roles]

    def token_roles(self, plan: "Plan") -> tuple[torch.Tensor, torch.Tensor]:
        """``[N]`` bool vectors: is each plan token an APE query row / a context key."""
        seg_ids = plan.segment_ids
        query = torch.tensor([s.role in self.query_roles for s in plan], dtype=torch.bool)
        context = torch.tensor([s.role in self.context_roles for s in plan], dtype=torch.bool)
        return query[seg_ids], context[seg_ids]

    def forward_kwargs(self, plan: "Plan", rows: torch.Tensor, cols: torch.Tensor) -> dict[str, Any]:
        """Keyword arguments for one model call: ``rows``/``cols`` are plan token indices, −1 = generated."""
        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        cols = torch.as_tensor(cols, dtype=torch.long).reshape(-1)
        n = len(plan)
        for what, idx in (("rows", rows), ("cols", cols)):
            if idx.numel() and (int(idx.max()) >= n or int(idx.min()) < -1):
                raise ValueError(f"APE.forward_kwargs: {what} must be plan token indices in [0, {n}) or -1, got "
                                 f"values in [{int(idx.min())}, {int(idx.max())}]")
        is_query, is_context = self.token_roles(plan)
        generated_rows = rows < 0
        ape_rows = generated_rows | is_query[rows.clamp(min=0)] & ~generated_rows
        context_cols = is_context[cols.clamp(min=0)] & (cols >= 0)
        return {KWARG: ApeCall(ape_rows, context_cols, float(self.temperature), float(self.exponent))}


# --------------------------------------------------------------------------------------------- attention
def _mask_parts(mask: torch.Tensor | None, q_len: int, kv_len: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(allowed bool, additive bias) broadcastable to [B, H, q, kv] from a bool, additive float or no mask."""
    if mask is None:  # plain causal, bottom-right aligned (the model's default when no mask is prepared)
        q_idx = torch.arange(q_len, device=device)[:, None] + (kv_len - q_len)
        allowed = torch.arange(kv_len, device=device)[None, :] <= q_idx
        return allowed[None, None], torch.zeros((), device=device)
    if mask.dim() != 4:
        raise ValueError(f"APE attention expects a 4D attention mask [B, 1, q, kv], got shape {tuple(mask.shape)}")
    mask = mask[:, :, :, :kv_len]
    if mask.dtype == torch.bool:
        return mask, torch.zeros((), device=device)
    if not mask.is_floating_point():
        raise TypeError(f"APE attention needs a bool or additive float mask, got {mask.dtype}")
    allowed = mask > torch.finfo(mask.dtype).min / 2
    return allowed, torch.where(allowed, mask.to(torch.float32), torch.zeros((), device=device))


def _grouped(t: torch.Tensor, kv_heads: int, groups: int) -> torch.Tensor:
    """A [B, 1 | H, r, kv] mask or bias viewed as [B, 1 | Hkv, 1 | g, r, kv] (query head h = kv head h // g)."""
    if t.dim() == 0:
        return t
    if t.shape[1] == 1:
        return t.unsqueeze(2)
    return t.reshape(t.shape[0], kv_heads, groups, *t.shape[2:])


def _scores(query: torch.Tensor, key: torch.Tensor, scaling: float, softcap: float | None) -> torch.Tensor:
    """Logits [B, Hkv, g, r, kv] in fp32 without repeating grouped key heads; soft-capped like Gemma 2."""
    batch, heads, rows, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    q = query.float().reshape(batch, kv_heads, groups * rows, dim)
    scores = torch.matmul(q, key.float().transpose(-1, -2)).view(batch, kv_heads, groups, rows, -1).mul_(scaling)
    if softcap is not None:
        scores = scores.div_(softcap).tanh_().mul_(softcap)
    return scores


def _weighted(probs: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """probs [B, Hkv, g, r, kv] @ value [B, Hkv, kv, D] -> [B, H, r, D]."""
    batch, kv_heads, groups, rows, kv = probs.shape
    out = torch.matmul(probs.reshape(batch, kv_heads, groups * rows, kv), value.float())
    return out.view(batch, kv_heads * groups, rows, -1)


def ape_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: Any = _UNSET,
    sliding_window: int | None = None,
    s_aux: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The registered attention function: plain masked attention, APE re-weighting on APE rows.

    Shapes as transformers passes them: query ``[B, Hq, q, D]``, key/value ``[B, Hkv, kv, D]`` (grouped heads not
    repeated); returns ``([B, q, Hq, D], None)``.
    """
    if s_aux is not None:
        raise NotImplementedError("APE attention does not support attention sinks (s_aux, e.g. gpt-oss)")
    if dropout and module.training:
        raise NotImplementedError("APE attention is for inference; call model.eval() (dropout > 0 in training mode)")
    if softcap is _UNSET:
        softcap = getattr(getattr(module, "config", None), "attn_logit_softcapping", None)
    batch, heads, q_len, head_dim = query.shape
    kv_len = key.shape[-2]
    if heads % key.shape[1]:
        raise ValueError(f"APE attention: {heads} query heads are not a multiple of {key.shape[1]} key/value heads")
    if sliding_window is not None and kv_len > sliding_window and not getattr(module, "_structlm_window_warned", False):
        warnings.warn(
            f"APE attention: this layer has a sliding window of {sliding_window} but the call has {kv_len} keys; "
            "the 4D mask is applied as given (as every backend does with a custom mask) — fold the window into the "
            "plan's mask if the model needs it",
            stacklevel=2,
        )
        module._structlm_window_warned = True
    scaling = head_dim**-0.5 if scaling is None else scaling
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    call: ApeCall | None = kwargs.get(KWARG)
    allowed, bias = _mask_parts(attention_mask, q_len, kv_len, query.device)

    out = torch.empty(batch, heads, q_len, head_dim, dtype=torch.float32, device=query.device)
    ape_rows = torch.zeros(q_len, dtype=torch.bool, device=query.device)
    if call is not None:
        if call.rows.numel() != q_len or call.context.numel() != kv_len:
            raise ValueError(
                f"APE attention: the call was prepared for {call.rows.numel()} rows x {call.context.numel()} keys but "
                f"the layer sees {q_len} x {kv_len}; pass forward_kwargs built for this exact call"
            )
        ape_rows = call.rows.to(query.device)

    def rows_of(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return t if t.dim() == 0 else t[:, :, idx]

    plain = ~ape_rows
    if plain.any():
        idx = plain.nonzero().squeeze(-1)
        if softcap is None:
            # sdpa on the plain rows, with an additive float mask carrying the same visibility and bias
            blocked = torch.tensor(torch.finfo(torch.float32).min, device=query.device)
            mask_f = torch.where(rows_of(allowed, idx), rows_of(bias, idx), blocked)
            out[:, :, idx] = F.scaled_dot_product_attention(
                query[:, :, idx].float(), key.float(), value.float(), attn_mask=mask_f, scale=scaling,
                enable_gqa=groups > 1,
            )
        else:
            scores = _scores(query[:, :, idx], key, scaling, softcap) + _grouped(rows_of(bias, idx), kv_heads, groups)
            scores = scores.masked_fill(~_grouped(rows_of(allowed, idx), kv_heads, groups), float("-inf"))
            out[:, :, idx] = _weighted(torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0), value)
    if ape_rows.any():
        idx = ape_rows.nonzero().squeeze(-1)
        scores = _scores(query[:, :, idx], key, scaling, softcap)
        scores += _grouped(rows_of(bias, idx), kv_heads, groups)
        visible = _grouped(rows_of(allowed, idx), kv_heads, groups)
        context = call.context.to(query.device)
        # One softmax over t_j = s_j / T + (e - 1) lse_C (context keys) and t_j = s_j (others), whose normaliser
        # is Z_C^e + Z_O: exactly the two-partition merge softmax([e lse_C, lse_O]). Built in place (the
        # logits of the query rows over every cached key are the largest tensors here).
        scores.mul_(torch.where(context, 1.0 / call.temperature, 1.0))
        lse_ctx = torch.logsumexp(scores.masked_fill(~(visible & context), float("-inf")), dim=-1, keepdim=True)
        correction = torch.where(torch.isfinite(lse_ctx), (call.exponent - 1.0) * lse_ctx, torch.zeros_like(lse_ctx))
        scores.addcmul_(context.to(scores.dtype), correction)
        scores.masked_fill_(~visible, float("-inf"))
        probs = torch.softmax(scores, dim=-1).nan_to_num_(nan=0.0)  # a row that sees nothing gives 0
        out[:, :, idx] = _weighted(probs, value)
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


_registered = False


def register() -> str:
    """Register the APE attention function (and its mask builder) with transformers; returns its name.

    The mask builder is transformers' ``eager_mask`` (additive float), so HF-made masks reach the function in the
    same form as the runtime's 4D masks.
    """
    global _registered
    if not _registered:
        from transformers import AttentionInterface, AttentionMaskInterface
        from transformers.masking_utils import eager_mask

        AttentionInterface.register(IMPLEMENTATION, ape_attention)
        AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)
        _registered = True
    return IMPLEMENTATION


register()
