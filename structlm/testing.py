"""Fixtures for tests, demos and benchmarks, in one place: tiny random models, the reference forward, a plan.

Why here and not in ``tests/``: the demo, the examples and the benchmarks need the same tiny models and the same
reference as the tests, and users checking their own plans want the oracle too.

* :func:`tiny_model` — a tiny random Hugging Face model (fp32, eval) of any architecture the runtime is tested on;
  no downloads, exactness needs no trained weights.
* :func:`brute_force_mask` — the visibility rule evaluated segment pair by segment pair, independently of
  :mod:`structlm.masks`: the oracle every compiled mask is checked against.
* :func:`reference_forward` — the model called directly with an explicit additive float 4D mask from that oracle
  and the plan's position ids: what every backend must reproduce.
* :func:`example_plan` — a small plan that shows every feature of the core.
* :func:`demo_tokenizer` — re-exported from :mod:`structlm.text`.
"""
from __future__ import annotations

from typing import Any

import torch

from structlm.plan import Plan
from structlm.segment import Segment
from structlm.text import demo_tokenizer

__all__ = ["ARCHITECTURES", "DECODERS", "ENCODERS", "tiny_model", "tiny_llama", "brute_force_mask",
           "reference_forward", "example_plan", "demo_tokenizer"]

DECODERS = ("llama", "qwen2", "mistral", "gemma2", "gemma3", "phi3")
ENCODERS = ("bert", "roberta")
ARCHITECTURES = DECODERS + ENCODERS

_BASE = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=256)

# Per architecture: config class, model class, default attention, config fields of its own.
_KINDS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", "sdpa", dict(num_key_value_heads=2)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", "sdpa", dict(num_key_value_heads=2)),
    "mistral": ("MistralConfig", "MistralForCausalLM", "sdpa", dict(num_key_value_heads=1, sliding_window=None)),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", "eager", dict(num_key_value_heads=2, head_dim=8)),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", "eager", dict(num_key_value_heads=2, head_dim=8)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", "sdpa",
             dict(num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2)),
    "bert": ("BertConfig", "BertModel", "sdpa", dict(type_vocab_size=2)),
    "roberta": ("RobertaConfig", "RobertaModel", "sdpa", dict(pad_token_id=1)),
}


def tiny_model(arch: str = "llama", attn: str | None = None, seed: int = 0, sharpen: float = 1.0,
               **config: Any) -> torch.nn.Module:
    """A tiny random model of ``arch`` (one of :data:`ARCHITECTURES`) in fp32 eval mode.

    ``config`` overrides any config field (``vocab_size``, ``num_hidden_layers``, ``max_position_embeddings``…);
    ``attn`` picks the attention implementation (default: sdpa, eager for Gemma). ``sharpen`` scales the query
    and key projections: random init attends almost uniformly, and a sharper pattern lets a test tell a right
    re-weighting from a wrong one.
    """
    import transformers

    if arch not in _KINDS:
        raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ARCHITECTURES)}")
    config_name, model_name, default_attn, own = _KINDS[arch]
    fields = {**_BASE, **own, **config}
    model_cls = getattr(transformers, model_name)
    torch.manual_seed(seed)
    model = model_cls._from_config(getattr(transformers, config_name)(**fields),
                                   attn_implementation=attn or default_attn, dtype=torch.float32).eval()
    if sharpen != 1.0:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith(("q_proj.weight", "k_proj.weight")):
                    param.mul_(sharpen)
    return model


def tiny_llama(vocab_size: int, hidden_size: int = 64, layers: int = 2, max_positions: int = 4096,
               **config: Any) -> torch.nn.Module:
    """The tiny Llama of the offline demo, examples and benchmarks (BOS 1, EOS 2, pad 0, as ``demo_tokenizer``)."""
    return tiny_model("llama", vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                      num_hidden_layers=layers, max_position_embeddings=max_positions, bos_token_id=1,
                      eos_token_id=2, pad_token_id=0, **config)


def brute_force_mask(plan: Plan) -> torch.Tensor:
    """``[N, N]`` bool: the rule written out segment pair by segment pair, independently of :mod:`structlm.masks`.

    ``allowed(q, k) = (same segment and (k <= q or not causal)) or (seg(q) sees seg(k))``.
    """
    n = len(plan)
    mask = torch.zeros(n, n, dtype=torch.bool)
    spans = plan.spans
    for segment in plan:
        q0, q1 = spans[segment.name]
        own = torch.ones(q1 - q0, q1 - q0, dtype=torch.bool)
        mask[q0:q1, q0:q1] = torch.tril(own) if segment.causal else own
        for viewed in plan.sees(segment.name):
            k0, k1 = spans[viewed]
            mask[q0:q1, k0:k1] = True
    return mask


def reference_forward(model: torch.nn.Module, plan: Plan, attn: str | None = None, position_offset: int = 0,
                      **kwargs: Any):
    """The plan as one direct model call: additive float 4D mask from :func:`brute_force_mask`, plan positions
    (plus ``position_offset``, e.g. RoBERTa's ``pad + 1``), all hidden states. ``attn`` switches the model's
    attention implementation first; ``kwargs`` go to the model (e.g. a custom attention's arguments)."""
    if attn is not None:
        model.set_attn_implementation(attn)
    mask = torch.where(brute_force_mask(plan), 0.0, torch.finfo(torch.float32).min)[None, None]
    call = dict(attention_mask=mask, position_ids=plan.position_ids + position_offset, output_hidden_states=True,
                **kwargs)
    if model.can_generate():
        call["use_cache"] = False
    with torch.no_grad():
        return model(plan.input_ids, **call)


def example_plan() -> Plan:
    """A small plan that shows every feature of the core: prefix, parallel contexts, a query seeing all."""
    plan = Plan()
    plan.add(Segment("prefix", input_ids=[1, 2, 3, 4], role="prefix"))
    for i, ids in enumerate(([10, 11, 12], [20, 21, 22, 23, 24], [30, 31])):
        plan.add(Segment(f"context{i}", input_ids=ids, start=4, role="context"), sees=["prefix"])
    plan.add(Segment("query", input_ids=[40, 41], start=9, role="query"), sees=plan.names)
    return plan
