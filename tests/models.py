"""Tiny random Hugging Face models built from configs: exactness needs no trained weights and no downloads."""
from __future__ import annotations

import warnings

import torch

warnings.filterwarnings("ignore", message=".*past_key_values.*")

COMMON = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=256)


def _build(config_cls, model_cls, attn="sdpa", **extra):
    torch.manual_seed(0)
    kwargs = dict(COMMON)
    kwargs.update(extra)
    config = config_cls(**kwargs)
    model = model_cls._from_config(config, attn_implementation=attn, dtype=torch.float32)
    return model.eval()


def llama(attn="sdpa"):
    from transformers import LlamaConfig, LlamaForCausalLM
    return _build(LlamaConfig, LlamaForCausalLM, attn, num_key_value_heads=2)


def qwen2(attn="sdpa"):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    return _build(Qwen2Config, Qwen2ForCausalLM, attn, num_key_value_heads=2)


def mistral(attn="sdpa"):
    from transformers import MistralConfig, MistralForCausalLM
    return _build(MistralConfig, MistralForCausalLM, attn, num_key_value_heads=1, sliding_window=None)


def gemma2(attn="eager"):
    from transformers import Gemma2Config, Gemma2ForCausalLM
    return _build(Gemma2Config, Gemma2ForCausalLM, attn, num_key_value_heads=2, head_dim=8)


def gemma3(attn="eager"):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig
    return _build(Gemma3TextConfig, Gemma3ForCausalLM, attn, num_key_value_heads=2, head_dim=8)


def phi3(attn="sdpa"):
    from transformers import Phi3Config, Phi3ForCausalLM
    return _build(Phi3Config, Phi3ForCausalLM, attn, num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def bert(attn="sdpa"):
    from transformers import BertConfig, BertModel
    return _build(BertConfig, BertModel, attn, type_vocab_size=2)


def roberta(attn="sdpa"):
    from transformers import RobertaConfig, RobertaModel
    return _build(RobertaConfig, RobertaModel, attn, pad_token_id=1)


DECODERS = {"llama": llama, "qwen2": qwen2, "mistral": mistral, "gemma2": gemma2, "gemma3": gemma3, "phi3": phi3}
ENCODERS = {"bert": bert, "roberta": roberta}
