"""Models dispatched by accelerate: offloaded layers (meta weights behind hooks) give the plain model's numbers."""
from __future__ import annotations

import pytest
import torch

accelerate = pytest.importorskip("accelerate")

from structlm.errors import BackendError  # noqa: E402
from structlm.hf import SegmentCache, StructuredLM, model_fingerprint  # noqa: E402
from structlm.rag import demo_tokenizer, parallel  # noqa: E402
from structlm.testing import reference_forward, tiny_llama  # noqa: E402

WORDS = "alpha beta gamma delta eps zeta eta theta iota kappa who what when"


@pytest.fixture(scope="module")
def tok():
    return demo_tokenizer([WORDS])


def _plan(tok):
    return parallel(tok, ["alpha beta gamma delta", "eps zeta eta", "theta iota kappa alpha"], "who what when",
                    prefix="kappa iota")


def _cpu_offloaded(seed=0):
    model = tiny_llama(vocab_size=40, seed=seed)
    return accelerate.cpu_offload(model, execution_device="cpu")


def _disk_offloaded(tmp_path, seed=0):
    """Embeddings and head on the CPU, layer 0 held in CPU memory, layer 1 memory-mapped from disk."""
    model = tiny_llama(vocab_size=40, seed=seed)
    device_map = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                  "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    return accelerate.dispatch_model(model, device_map=device_map, main_device="cpu",
                                     offload_dir=str(tmp_path / "offload"), offload_buffers=False)


def test_the_hooks_really_offload(tmp_path):
    model = _cpu_offloaded()
    assert model.model.layers[0].self_attn.q_proj.weight.is_meta
    disk = _disk_offloaded(tmp_path)
    assert disk.model.layers[1].self_attn.q_proj.weight.is_meta
    assert any((tmp_path / "offload").iterdir())


@pytest.mark.parametrize("how", ["cpu_offload", "disk"])
def test_offloaded_model_gives_the_plain_logits_on_dense_and_reuse(tok, tmp_path, how):
    plain = tiny_llama(vocab_size=40)
    plan = _plan(tok)
    expected = reference_forward(plain, plan).logits
    model = _cpu_offloaded() if how == "cpu_offload" else _disk_offloaded(tmp_path)
    lm = StructuredLM(model)
    assert lm.fingerprint == model_fingerprint(plain)  # read from the hooks' weights maps, not the meta tensors
    assert lm.device == torch.device("cpu")
    for backend in ("dense", "reuse"):
        got = lm.forward(plan, backend=backend).logits
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    again = lm.forward(plan, backend="reuse").logits  # every segment from the cache now
    assert lm.cache.hits >= plan.num_segments
    torch.testing.assert_close(again, expected, atol=1e-5, rtol=1e-5)
    new = lm.generate(plan, max_new_tokens=3)
    assert torch.equal(new, StructuredLM(plain).generate(plan, max_new_tokens=3))


def test_offloaded_model_shares_the_plain_models_store(tok, tmp_path):
    """Same fingerprint, so a store written by the whole model serves the offloaded one from disk."""
    plan = _plan(tok)
    writer = StructuredLM(tiny_llama(vocab_size=40), cache=SegmentCache(directory=tmp_path / "kv"))
    expected = writer.forward(plan, backend="reuse").logits
    reader = StructuredLM(_cpu_offloaded(), cache=SegmentCache(directory=tmp_path / "kv"))
    got = reader.forward(plan, backend="reuse").logits
    assert reader.cache.disk_hits == plan.num_segments and reader.cache.misses == 0
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    other = _cpu_offloaded(seed=1)
    with pytest.raises(Exception, match="another model"):
        StructuredLM(other, cache=SegmentCache(directory=tmp_path / "kv")).forward(plan, backend="reuse")


def test_flex_runs_on_an_offloaded_model(tok):
    lm = StructuredLM(_cpu_offloaded())
    if not lm.flex_available():
        pytest.skip("flex needs a C++ compiler on CPU")
    plan = _plan(tok)
    expected = reference_forward(tiny_llama(vocab_size=40), plan).logits
    torch.testing.assert_close(lm.forward(plan, backend="flex").logits, expected, atol=1e-4, rtol=1e-4)


def test_empty_weights_never_loaded_is_a_clear_error():
    from accelerate import init_empty_weights
    from transformers import LlamaConfig, LlamaForCausalLM

    with init_empty_weights():
        model = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))
    with pytest.raises(BackendError, match="meta tensor and no accelerate hook"):
        StructuredLM(model)
