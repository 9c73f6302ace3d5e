"""``structlm_sdpa``: transformers' sdpa attention, without expanding grouped K/V heads when a mask is given.

transformers repeats grouped key/value heads (``repeat_kv``) whenever an explicit mask reaches sdpa, which on a
16k-token cache copies every key twice per layer. torch's CPU kernels take the mask and grouped heads together
(``enable_gqa=True``) with the same numbers, so our masked calls use that. Other cases (no mask, no grouping,
other devices, position bias, softcapping) go to transformers' own function unchanged. Registered through
``AttentionInterface`` — the model classes are not patched.
"""
from __future__ import annotations

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

__all__ = ["IMPLEMENTATION", "grouped_sdpa_attention"]

IMPLEMENTATION = "structlm_sdpa"


def grouped_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                           is_causal=None, **kwargs):
    groups = getattr(module, "num_key_value_groups", 1)
    plain = (
        attention_mask is None
        or groups == 1
        or query.device.type != "cpu"
        or kwargs.get("softcap") is not None
        or kwargs.get("position_bias") is not None
        or kwargs.get("output_attentions", False)
    )
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, enable_gqa=True
    )
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(IMPLEMENTATION, grouped_sdpa_attention)
AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)
