"""SegmentCache: LRU budget, disk store (safetensors, atomic), refusal of foreign or corrupt files,
re-positioned reuse, and the runtime's errors for bad input."""
from __future__ import annotations

import os

import pytest
import torch

from structlm import Plan, PlanError, Segment
from structlm.hf import (BackendError, CacheMismatchError, CorruptCacheError, PositionRangeError, SegmentCache,
                         StructuredLM)
from structlm.testing import tiny_model
from tests.test_runtime import ladder_plan, model, reference

TOL = 1e-4


def test_disk_store_round_trip_is_exact_and_atomic(tmp_path):
    m = model("llama")
    plan = ladder_plan()
    first = StructuredLM(m, cache=SegmentCache(directory=tmp_path))
    expected = first.forward(plan, backend="reuse").logits
    files = sorted(f for f in os.listdir(tmp_path) if f != "structlm-store.json")
    assert len(files) == 5 and all(f.endswith(".safetensors") for f in files)  # no temporary files left behind
    second = StructuredLM(m, cache=SegmentCache(directory=tmp_path))
    got = second.forward(plan, backend="reuse").logits
    assert second.cache.disk_hits == 5 and second.cache.misses == 0
    assert torch.allclose(got, expected, atol=1e-6)


def test_cache_made_by_another_model_is_refused(tmp_path):
    cache = SegmentCache()
    StructuredLM(model("llama"), cache=cache)
    with pytest.raises(CacheMismatchError, match="another model"):
        StructuredLM(model("qwen2"), cache=cache)
    # a file written for one model, found under the key another cache asks for
    StructuredLM(model("llama"), cache=SegmentCache(directory=tmp_path)).forward(ladder_plan(), backend="reuse")
    name = sorted(f for f in os.listdir(tmp_path) if f.endswith(".safetensors"))[0]
    foreign = SegmentCache(directory=tmp_path, fingerprint="0" * 24)
    with pytest.raises(CacheMismatchError, match="made by another model"):
        foreign.get(name.removesuffix(".safetensors"))


def test_two_random_inits_of_one_config_have_different_fingerprints():
    from structlm.hf import model_fingerprint

    a = tiny_model("llama")
    torch.manual_seed(123)
    from transformers import LlamaForCausalLM

    b = LlamaForCausalLM._from_config(a.config)
    assert model_fingerprint(a) != model_fingerprint(b)
    assert model_fingerprint(a) == model_fingerprint(a)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_format"])
def test_corrupt_cache_file_is_refused_with_advice(tmp_path, damage):
    m = model("llama")
    StructuredLM(m, cache=SegmentCache(directory=tmp_path)).forward(ladder_plan(), backend="reuse")
    path = tmp_path / sorted(f for f in os.listdir(tmp_path) if f.endswith(".safetensors"))[0]
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 64)
    else:
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(1)}, str(path), metadata={"format": "other"})
    lm = StructuredLM(m, cache=SegmentCache(directory=tmp_path))
    with pytest.raises(CorruptCacheError, match="delete it"):
        lm.forward(ladder_plan(), backend="reuse")


def test_lru_budget_evicts_oldest():
    m = model("llama")
    lm = StructuredLM(m)
    lm.forward(ladder_plan(), backend="reuse")
    sizes = [e.nbytes for e in lm.cache._entries.values()]
    small = SegmentCache(max_bytes=sum(sizes[-2:]))
    lm2 = StructuredLM(m, cache=small)
    lm2.forward(ladder_plan(), backend="reuse")
    assert len(small) == 2 and small.nbytes <= small.max_bytes
    assert "entries" in small.stats() and "SegmentCache(2 entries" in repr(small)
    with pytest.raises(ValueError, match="max_bytes"):
        SegmentCache(max_bytes=-1)


def test_repositioned_reuse_is_exact_for_a_segment_that_sees_nothing():
    m = model("llama")
    lm = StructuredLM(m, reposition="exact")
    ids = [5, 9, 13, 17, 21]
    lm.forward(Plan([Segment("doc", input_ids=ids, start=0)]), backend="reuse")
    moved = Plan([Segment("doc", input_ids=ids, start=40)])
    moved.add(Segment("q", input_ids=[3, 4], start=45), sees=["doc"])
    got = lm.forward(moved, backend="reuse").logits
    assert lm.repositioned == 1 and lm.cache.moved_hits == 1
    assert lm.cache.hits == 1 and lm.cache.misses == 2  # doc moved (a hit), q new; the first doc a miss
    fresh = StructuredLM(m).forward(moved, backend="reuse").logits
    assert torch.allclose(got, fresh, atol=TOL)
    # 'exact' refuses to move a segment that saw a prefix; 'any' moves it (approximately)
    with_prefix = Plan([Segment("p", input_ids=[1, 2])])
    with_prefix.add(Segment("doc", input_ids=ids, start=2), sees=["p"])
    lm.forward(with_prefix, backend="reuse")
    shifted = Plan([Segment("p", input_ids=[1, 2])])
    shifted.add(Segment("doc", input_ids=ids, start=30), sees=["p"])
    lm.forward(shifted, backend="reuse")
    assert lm.repositioned == 1
    loose = StructuredLM(m, reposition="any")
    loose.forward(with_prefix, backend="reuse")
    approx = loose.forward(shifted, backend="reuse").logits
    assert loose.repositioned == 1
    assert torch.isfinite(approx).all()


def test_rerotation_handles_gemma3_layer_types_and_partial_rotary():
    for arch in ("gemma3", "phi3"):
        m = model(arch)
        lm = StructuredLM(m, reposition="exact")
        lm.forward(Plan([Segment("doc", input_ids=[5, 6, 7, 8], start=0)]), backend="reuse")
        moved = Plan([Segment("doc", input_ids=[5, 6, 7, 8], start=9)])
        moved.add(Segment("q", input_ids=[3], start=13), sees=["doc"])
        got = lm.forward(moved, backend="reuse").logits
        assert lm.repositioned == 1
        assert torch.allclose(got, reference(m, moved).logits, atol=TOL), arch


# --------------------------------------------------------------------------------------------- bad input
def test_cyclic_plan_with_reuse_names_the_cycle():
    plan = ladder_plan()
    plan.add_edge("prefix", "query")
    lm = StructuredLM(model("llama"))
    with pytest.raises(PlanError, match=r"cyclic \(.*prefix.*query|cyclic \(.*query.*prefix"):
        lm.forward(plan, backend="reuse")
    assert lm.forward(plan).backend == "dense"  # auto falls back


def test_reuse_on_an_encoder_is_refused():
    lm = StructuredLM(model("bert"))
    with pytest.raises(BackendError, match="encoder"):
        lm.forward(ladder_plan(), backend="reuse")
    with pytest.raises(BackendError, match="cannot generate"):
        lm.generate(ladder_plan())


def test_positions_beyond_the_model_range():
    lm = StructuredLM(model("llama"))
    far = Plan([Segment("a", input_ids=[3, 4], start=255)])
    with pytest.raises(PositionRangeError, match="max_position_embeddings=256"):
        lm.forward(far)
    with pytest.raises(PositionRangeError, match="max_position_embeddings"):
        lm.generate(Plan([Segment("a", input_ids=[3, 4], start=250)]), max_new_tokens=10)
    assert StructuredLM(model("llama"), strict_positions=False).forward(far).logits.shape == (1, 2, 64)
    bert = StructuredLM(model("bert"))
    with pytest.raises(PositionRangeError, match="fractional"):
        bert.forward(Plan([Segment("a", input_ids=[3, 4], positions=[0.0, 0.5])]))
    with pytest.raises(PositionRangeError, match="max_position_embeddings"):
        StructuredLM(model("bert"), strict_positions=False).forward(far)


def test_embeds_of_the_wrong_width_and_ids_outside_the_vocabulary():
    lm = StructuredLM(model("llama"))
    plan = Plan([Segment("n", embeds=torch.randn(2, 7))])
    for backend in ("dense", "reuse"):
        with pytest.raises(PlanError, match="width 7.*32 wide"):
            lm.forward(plan, backend=backend)
    with pytest.raises(PlanError, match="vocabulary has 64"):
        lm.forward(Plan([Segment("a", input_ids=[3, 400])]))


def test_unknown_backend_and_options():
    lm = StructuredLM(model("llama"))
    with pytest.raises(ValueError, match="backend must be one of"):
        lm.forward(ladder_plan(), backend="fast")
    with pytest.raises(ValueError, match="reposition"):
        StructuredLM(model("llama"), reposition="sometimes")
