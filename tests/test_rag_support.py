"""Shared helpers for the RAG / APE tests: a tiny offline tokenizer and tiny random decoders (no downloads)."""
from __future__ import annotations

import torch

WORDS = (
    "the a cat dog sat on mat question answer what is where who doc one two three four five six seven eight nine "
    "ten red blue green house tree river city paper cites study model data graph node edge read write"
).split()


def tiny_tokenizer(bos: bool = True):
    """A word-level fast tokenizer built in memory; with ``bos=True`` it prepends ``<s>`` like Llama's."""
    from structlm.text import demo_tokenizer

    return demo_tokenizer([" ".join(WORDS)], bos=bos)


def tiny_model(arch: str = "llama", layers: int = 2, vocab: int = 64, seed: int = 0, attn: str = "eager", **extra):
    """A tiny random decoder with sharpened attention (so re-weightings show), eager attention to start with."""
    from structlm import testing

    fields = dict(num_hidden_layers=layers, vocab_size=vocab, num_key_value_heads=2, max_position_embeddings=512)
    if arch in ("gemma2", "gemma3"):
        fields.update(sliding_window=4096, query_pre_attn_scalar=8)
    if arch == "gemma2":
        fields.update(attn_logit_softcapping=5.0)
    return testing.tiny_model(arch, attn=attn, seed=seed, sharpen=6.0, **{**fields, **extra})


def run_plan(model, plan, attn: str | None = None, **kwargs):
    """The plan as one masked forward: additive 4D mask + plan positions (the dense reference)."""
    from structlm.testing import reference_forward

    return reference_forward(model, plan, attn=attn, **kwargs)
