"""`structlm rag`: the offline demo runs and prints the layout for each layout choice."""
from __future__ import annotations

import pytest

from structlm.cli import main


@pytest.mark.parametrize("layout", ["parallel", "graph-kv-top1"])
def test_rag_command_offline(layout, capsys):
    assert main(["rag", "--layout", layout, "--max-new-tokens", "2", "--context", "the cat sat",
                 "--context", "a dog ran far", "--query", "who sat"]) == 0
    out = capsys.readouterr().out
    assert "sees: prefix" in out and "answer (" in out and "SegmentCache(" in out
    if layout == "parallel":
        assert "role='context'" in out and "APE(T=0.9, S=0.9, repo)" in out
    else:
        assert "role='source'" in out and "role='target'" in out


def test_rag_command_with_a_saved_model(tmp_path, capsys):
    """``--model`` loads any local decoder + tokenizer (here a tiny random Llama saved to disk)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from structlm.rag import demo_tokenizer

    tokenizer = demo_tokenizer(["answer from the documents the cat sat a dog ran far who sat"])
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert main(["rag", "--model", str(tmp_path), "--max-new-tokens", "2", "--context", "the cat sat",
                 "--context", "a dog ran far", "--query", "who sat"]) == 0
    out = capsys.readouterr().out
    assert "random tiny model" not in out and "answer (APE(T=0.9" in out
