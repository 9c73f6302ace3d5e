"""Move cached keys to other positions by re-rotating them (RoPE), Prompt-Cache / PIE style.

Cached keys carry their rotation: ``k(p) = s * (k cos(p θ) + rotate_half(k) sin(p θ))``. Rotations compose,
so ``k(p + δ) = k(p) cos(δ θ) + rotate_half(k(p)) sin(δ θ)`` — the attention scaling ``s`` is divided out of
the second rotation. Values carry no position. For a segment that sees only itself this is exact (attention
depends only on relative positions); for a segment that saw other segments it is an approximation.
"""
from __future__ import annotations

import inspect

import torch

from structlm.errors import BackendError

__all__ = ["rotary_module", "rerotate_keys"]


def rotary_module(model: torch.nn.Module) -> torch.nn.Module:
    """The model's rotary embedding module; a clear error when the model has none (absolute positions)."""
    base = getattr(model, "base_model", model)
    rotary = getattr(base, "rotary_emb", None)
    if rotary is None:
        raise BackendError(
            f"{type(model).__name__} has no rotary embedding (model.rotary_emb): cached keys cannot be moved to "
            f"other positions; keep reposition off for this model"
        )
    return rotary


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rerotate_keys(model: torch.nn.Module, keys: list[torch.Tensor], delta: float | int) -> list[torch.Tensor]:
    """Per-layer keys ``[B, Hkv, L, D]`` rotated by ``delta`` positions (partial rotary dims handled)."""
    if delta == 0:
        return list(keys)
    rotary = rotary_module(model)
    config = getattr(model, "config", None)
    layer_types = getattr(config, "layer_types", None)
    takes_layer_type = "layer_type" in inspect.signature(rotary.forward).parameters
    cache: dict[object, tuple[torch.Tensor, torch.Tensor]] = {}
    out = []
    for layer, k in enumerate(keys):
        layer_type = layer_types[layer] if (takes_layer_type and layer_types) else None
        if layer_type not in cache:
            position = torch.tensor([[delta]], dtype=torch.float32 if isinstance(delta, float) else torch.long,
                                    device=k.device)
            probe = torch.empty(1, 1, k.shape[-1], dtype=torch.float32, device=k.device)
            if takes_layer_type and layer_type is not None:
                cos, sin = rotary(probe, position, layer_type)
            else:
                cos, sin = rotary(probe, position)
            scaling = getattr(rotary, f"{layer_type}_attention_scaling", None) if layer_type else None
            if scaling is None:
                scaling = getattr(rotary, "attention_scaling", 1.0)
            cache[layer_type] = (cos[0, 0] / scaling, sin[0, 0] / scaling)
        cos, sin = cache[layer_type]
        dim = cos.shape[-1]
        work = k.float()
        rot, rest = work[..., :dim], work[..., dim:]
        rot = rot * cos + _rotate_half(rot) * sin
        out.append(torch.cat([rot, rest], dim=-1).to(k.dtype))
    return out
