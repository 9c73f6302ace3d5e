"""Shared helpers for the RAG / APE tests: a tiny offline tokenizer and tiny random decoders (no downloads)."""
from __future__ import annotations

import torch

WORDS = (
    "the a cat dog sat on mat question answer what is where who doc one two three four five six seven eight nine "
    "ten red blue green house tree river city paper cites study model data graph node edge read write"
).split()


def tiny_tokenizer(bos: bool = True):
    """A word-level fast tokenizer built in memory; with ``bos=True`` it prepends ``<s>`` like Llama's."""
    from structlm.rag import demo_tokenizer

    return demo_tokenizer([" ".join(WORDS)], bos=bos)


def tiny_model(arch: str = "llama", layers: int = 2, vocab: int = 64, seed: int = 0, attn: str = "eager", **extra):
    """A tiny random decoder in fp32 eval mode; ``attn`` is the attention implementation to start with."""
    import transformers as tf

    common = dict(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    )
    common.update(extra)
    if arch == "llama":
        cfg, cls = tf.LlamaConfig(**common), tf.LlamaForCausalLM
    elif arch == "qwen2":
        cfg, cls = tf.Qwen2Config(**common), tf.Qwen2ForCausalLM
    elif arch == "mistral":
        cfg, cls = tf.MistralConfig(sliding_window=None, **common), tf.MistralForCausalLM
    elif arch == "phi3":
        cfg, cls = tf.Phi3Config(pad_token_id=0, **common), tf.Phi3ForCausalLM
    elif arch == "gemma2":
        cfg, cls = tf.Gemma2Config(head_dim=8, sliding_window=4096, attn_logit_softcapping=5.0,
                                   query_pre_attn_scalar=8, **common), tf.Gemma2ForCausalLM
    elif arch == "gemma3":
        cfg, cls = tf.Gemma3TextConfig(head_dim=8, sliding_window=4096, query_pre_attn_scalar=8,
                                       **common), tf.Gemma3ForCausalLM
    else:
        raise ValueError(arch)
    torch.manual_seed(seed)
    model = cls._from_config(cfg, attn_implementation=attn).eval()
    # Random init is small; scale attention projections up so attention patterns are far from uniform and the
    # tests can tell a right re-weighting from a wrong one.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                param.mul_(6.0)
    return model


def run_plan(model, plan, attn: str | None = None, **kwargs):
    """The plan as one masked forward: additive 4D mask + plan positions (the dense reference)."""
    if attn is not None:
        model.set_attn_implementation(attn)
    with torch.no_grad():
        return model(
            input_ids=plan.input_ids,
            attention_mask=plan.dense_mask("additive"),
            position_ids=plan.position_ids,
            use_cache=False,
            output_hidden_states=True,
            **kwargs,
        )
