"""StructuredLM exactness: every backend equals the reference (the model called with an explicit additive float
4D mask built by brute force from the rule, plus position ids), on several architectures."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from structlm import Plan, PlanError, Segment
from structlm.hf import StructuredLM
from structlm.masks import to_additive
from structlm.testing import DECODERS, ENCODERS, reference_forward, tiny_model
from tests.strategies import brute_force_mask, plans

TOL = 1e-4
_MODELS: dict[str, torch.nn.Module] = {}


def model(name: str) -> torch.nn.Module:
    if name not in _MODELS:
        _MODELS[name] = tiny_model(name)
    return _MODELS[name]


def reference(m: torch.nn.Module, plan: Plan, offset: int = 0):
    """The model called directly: brute-force additive mask, plan positions."""
    return reference_forward(m, plan, position_offset=offset)


def ladder_plan(vocab: int = 60) -> Plan:
    g = torch.Generator().manual_seed(1)

    def ids(n):
        return torch.randint(3, vocab, (n,), generator=g)

    plan = Plan()
    plan.add(Segment("prefix", input_ids=ids(4), role="prefix"))
    plan.add(Segment("c0", input_ids=ids(6), start=4, role="context"), sees=["prefix"])
    plan.add(Segment("c1", input_ids=ids(3), start=4, causal=False, role="context"), sees=["prefix"])
    plan.add(Segment("t", input_ids=ids(5), start=10, role="target"), sees=["prefix", "c1"])
    plan.add(Segment("query", input_ids=ids(4), start=15, role="query"), sees=["prefix", "c0", "c1", "t"])
    return plan


@pytest.mark.parametrize("arch", sorted(DECODERS))
def test_sequential_plan_equals_plain_model_call(arch):
    m = model(arch)
    lm = StructuredLM(m)
    ids = torch.randint(3, 60, (1, 12), generator=torch.Generator().manual_seed(0))
    plan = Plan([Segment("text", input_ids=ids[0])])
    with torch.no_grad():
        plain = m(ids, use_cache=False).logits
    for backend in ("dense", "reuse"):
        assert torch.allclose(lm.forward(plan, backend=backend).logits, plain, atol=TOL), backend


@pytest.mark.parametrize("arch", sorted(ENCODERS))
def test_encoder_sequential_plan_equals_plain_call(arch):
    m = model(arch)
    lm = StructuredLM(m)
    ids = torch.randint(3, 60, (1, 12), generator=torch.Generator().manual_seed(0))
    plan = Plan([Segment("text", input_ids=ids[0], causal=False)])
    with torch.no_grad():
        plain = m(ids).last_hidden_state
    assert torch.allclose(lm.forward(plan, backend="dense").last_hidden_state, plain, atol=TOL)


@pytest.mark.parametrize("arch", sorted(DECODERS))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=plans(acyclic=True, max_segments=5, max_len=7, vocab=60))
def test_dense_and_reuse_equal_reference(arch, plan):
    m = model(arch)
    lm = StructuredLM(m)
    ref = reference(m, plan).logits
    for backend in ("dense", "reuse"):
        got = lm.forward(plan, backend=backend).logits
        assert torch.allclose(got, ref, atol=TOL), (backend, (got - ref).abs().max().item())


@pytest.mark.parametrize("arch", sorted(ENCODERS))
@settings(max_examples=8, deadline=None)
@given(plan=plans(acyclic=False, max_segments=5, max_len=7, vocab=60))
def test_encoder_dense_equals_reference(arch, plan):
    m = model(arch)
    lm = StructuredLM(m)
    ref = reference(m, plan, offset=lm.position_offset).last_hidden_state
    assert torch.allclose(lm.forward(plan, backend="dense").last_hidden_state, ref, atol=TOL)


@pytest.mark.parametrize("arch", sorted(DECODERS))
def test_flex_equals_dense_and_reuse(arch):
    m = model(arch)
    lm = StructuredLM(m, flex_block_size=16)
    plan = ladder_plan()
    ref = reference(m, plan).logits
    for backend in ("flex", "dense", "reuse"):
        got = lm.forward(plan, backend=backend).logits
        assert torch.allclose(got, ref, atol=TOL), (backend, (got - ref).abs().max().item())


@pytest.mark.parametrize("arch", sorted(ENCODERS))
def test_flex_on_an_encoder(arch):
    m = model(arch)
    lm = StructuredLM(m, flex_block_size=16)
    plan = ladder_plan()
    ref = reference(m, plan, offset=lm.position_offset).last_hidden_state
    assert torch.allclose(lm.forward(plan, backend="flex").last_hidden_state, ref, atol=TOL)


@pytest.mark.parametrize("arch", ["llama", "gemma2", "phi3"])
def test_segment_seeing_only_itself_equals_the_text_encoded_alone(arch):
    m = model(arch)
    lm = StructuredLM(m)
    plan = ladder_plan()
    out = lm.forward(plan, backend="reuse")
    start, end = plan.spans["c0"]
    alone_ids = plan["c0"].input_ids[None]
    with torch.no_grad():
        # c0 sees the prefix, so encode prefix + c0 plainly; the prefix sees only itself: plain call at 0..3
        plain = m(torch.cat([plan["prefix"].input_ids[None], alone_ids], 1), use_cache=False).logits
        prefix_alone = m(plan["prefix"].input_ids[None], use_cache=False).logits
    assert torch.allclose(out.logits[:, start:end], plain[:, 4:], atol=TOL)
    assert torch.allclose(out.logits[:, :4], prefix_alone, atol=TOL)
    # a segment at positions 7.. that sees nothing == the text encoded alone at those positions
    lone = Plan([Segment("x", input_ids=[5, 6, 7], start=7)])
    with torch.no_grad():
        shifted = m(torch.tensor([[5, 6, 7]]), position_ids=torch.tensor([[7, 8, 9]]), use_cache=False).logits
    assert torch.allclose(lm.forward(lone, backend="reuse").logits, shifted, atol=TOL)


def test_cached_second_request_equals_uncached_and_prefills_only_what_is_new():
    m = model("llama")
    lm = StructuredLM(m)
    first = ladder_plan()
    lm.forward(first, backend="reuse")
    assert lm.cache.misses == 5 and lm.cache.hits == 0
    second = first.subplan(["prefix", "c0", "c1", "t"])
    second.add(Segment("other", input_ids=[9, 8, 7, 6, 5], start=15, role="query"), sees=["prefix", "c0", "t"])
    cached = lm.forward(second, backend="reuse")
    assert lm.cache.hits == 4 and lm.cache.misses == 6
    fresh = StructuredLM(m).forward(second, backend="reuse")
    assert torch.allclose(cached.logits, fresh.logits, atol=1e-6)
    assert torch.allclose(cached.logits, reference(m, second).logits, atol=TOL)


def test_batch_equals_one_by_one():
    for arch in ("llama", "bert"):
        m = model(arch)
        lm = StructuredLM(m)
        batch = [ladder_plan(), Plan([Segment("s", input_ids=[3, 4, 5], causal=arch == "llama")]),
                 ladder_plan().subplan(["prefix", "c1"])]
        outs = lm.forward(batch, backend="dense")
        for plan, out in zip(batch, outs):
            one = lm.forward(plan, backend="dense")
            assert out.last_hidden_state.shape == one.last_hidden_state.shape
            assert torch.allclose(out.last_hidden_state, one.last_hidden_state, atol=TOL)
    lm = StructuredLM(model("llama"))
    outs = lm.forward(batch, backend="reuse")
    assert [o.backend for o in outs] == ["reuse"] * 3


def test_hidden_states_match_reference_on_every_layer():
    m = model("qwen2")
    lm = StructuredLM(m)
    plan = ladder_plan()
    ref = reference(m, plan).hidden_states
    states = lm.hidden_states(plan)
    assert sorted(states) == list(range(len(ref)))
    for layer, tensor in states.items():
        assert torch.allclose(tensor, ref[layer][0], atol=TOL)
    reuse = lm.forward(plan, backend="reuse", output_hidden_states=True).hidden_states
    for layer in range(len(ref)):
        assert torch.allclose(reuse[layer], ref[layer], atol=TOL)
    with pytest.raises(ValueError, match="out of range"):
        lm.hidden_states(plan, layers=[99])


@pytest.mark.parametrize("arch", ["llama", "mistral"])
def test_greedy_generate_equals_manual_loop_on_dense_reference(arch):
    m = model(arch)
    lm = StructuredLM(m)
    plan = ladder_plan()
    got = lm.generate(plan, max_new_tokens=6, eos_token_id=[])[0].tolist()
    last = plan.last_segment()
    visible = plan.sees(last.name) + [last.name]
    tokens: list[int] = []
    for step in range(6):
        grown = plan.copy()
        if tokens:
            grown.add(Segment("gen", input_ids=tokens, start=last.end_position), sees=visible)
        logits = reference(m, grown).logits[0, -1]
        tokens.append(int(torch.argmax(logits)))
    assert got == tokens


def test_generate_on_a_cyclic_plan_and_sampling():
    m = model("llama")
    lm = StructuredLM(m)
    plan = ladder_plan()
    plan.add_edge("prefix", "query")  # cycle: dense prefill
    greedy = lm.generate(plan, max_new_tokens=3, eos_token_id=[])
    assert greedy.shape == (1, 3)
    gen = torch.Generator().manual_seed(0)
    sampled = lm.generate(ladder_plan(), max_new_tokens=4, do_sample=True, temperature=0.7, top_p=0.9, generator=gen,
                          eos_token_id=[])
    assert sampled.shape == (1, 4) and int(sampled.max()) < 64
    with pytest.raises(ValueError, match="temperature"):
        lm.generate(plan, do_sample=True, temperature=0)


def test_score_is_the_segment_log_likelihood_given_what_it_sees():
    m = model("llama")
    lm = StructuredLM(m)
    plan = ladder_plan()
    scores = lm.score(plan, ["c1", "query"])
    logprobs = torch.log_softmax(reference(m, plan).logits[0], -1)
    spans = plan.spans
    for name in ("c1", "query"):
        start, end = spans[name]
        ids = plan[name].input_ids
        expected = sum(logprobs[i - 1, ids[i - start]].item() for i in range(start + 1, end))
        context_end = spans[plan.sees(name)[-1]][1]
        expected += logprobs[context_end - 1, ids[0]].item()
        assert scores[name] == pytest.approx(expected, abs=1e-3)


def test_encoder_score_is_a_pooled_similarity():
    lm = StructuredLM(model("bert"))
    plan = Plan()
    plan.add(Segment("query", input_ids=[5, 6, 7], causal=False))
    plan.add(Segment("a", input_ids=[5, 6, 7], causal=False))
    plan.add(Segment("b", input_ids=[30, 31], causal=False))
    scores = lm.score(plan, ["a", "b"], against="query")
    assert scores["a"] == pytest.approx(1.0, abs=1e-5) and scores["b"] < 1.0
    with pytest.raises(ValueError, match="against"):
        lm.score(plan, ["a"])


def test_soft_tokens_run_on_every_backend():
    m = model("llama")
    lm = StructuredLM(m)
    soft = torch.randn(3, 32, generator=torch.Generator().manual_seed(3))
    plan = Plan()
    plan.add(Segment("text", input_ids=[3, 4, 5]))
    plan.add(Segment("node", embeds=soft, start=3, causal=False), sees=["text"])
    plan.add(Segment("q", input_ids=[6, 7], start=6), sees=["text", "node"])
    embeds = plan.inputs_embeds(m.get_input_embeddings())
    mask = to_additive(brute_force_mask(plan))[None, None]
    with torch.no_grad():
        ref = m(inputs_embeds=embeds, attention_mask=mask, position_ids=plan.position_ids, use_cache=False).logits
    for backend in ("dense", "reuse"):
        assert torch.allclose(lm.forward(plan, backend=backend).logits, ref, atol=TOL)


def test_float_positions_reach_rotary_models():
    m = model("llama")
    lm = StructuredLM(m)
    plan = Plan([Segment("a", input_ids=[3, 4, 5], positions=[0.0, 0.5, 1.0])])
    mask = to_additive(brute_force_mask(plan))[None, None]
    with torch.no_grad():
        ref = m(plan.input_ids, attention_mask=mask, position_ids=plan.position_ids, use_cache=False).logits
    assert torch.allclose(lm.forward(plan, backend="reuse").logits, ref, atol=TOL)


def test_auto_backend_choice():
    decoder = StructuredLM(model("llama"))
    assert decoder.choose_backend(ladder_plan()) == "reuse"
    assert decoder.choose_backend(ladder_plan(), output_hidden_states=True) == "dense"
    encoder = StructuredLM(model("bert"), strict_positions=False)
    sparse = Plan([Segment(f"s{i}", input_ids=torch.ones(1024, dtype=torch.long), causal=False) for i in range(8)])
    dense_plan = Plan([Segment("all", input_ids=torch.ones(8192, dtype=torch.long), causal=False)])
    assert encoder.choose_backend(ladder_plan()) == "dense"
    assert encoder.choose_backend(dense_plan) == "dense"  # nothing to skip: no compile
    import shutil

    expected = "flex" if (shutil.which("g++") or shutil.which("c++")) else "dense"
    assert encoder.choose_backend(sparse) == expected


def test_prefill_gives_the_whole_plan_as_a_transformers_cache():
    m = model("llama")
    lm = StructuredLM(m)
    plan = ladder_plan()
    state = lm.prefill(plan)
    cache = state.to_cache()
    mask = to_additive(brute_force_mask(plan))[None, None]
    with torch.no_grad():
        from transformers import DynamicCache

        ref = m(plan.input_ids, attention_mask=mask, position_ids=plan.position_ids, cache=DynamicCache(),
                use_cache=True).cache
    assert cache.get_seq_length() == len(plan)
    for ours, theirs in zip(cache.layers, ref.layers):
        assert torch.allclose(ours.keys, theirs.keys, atol=TOL) and torch.allclose(ours.values, theirs.values, atol=TOL)
    assert state.to_cache(["prefix", "c1"]).get_seq_length() == 7


@pytest.mark.parametrize("arch", ["llama", "qwen2", "phi3"])
def test_a_causal_chain_is_one_call_and_its_segments_are_cached_one_by_one(arch):
    """A sequential prompt is prefilled in one plain causal call; the entries it leaves are the per-segment ones."""
    m = model(arch)
    lm = StructuredLM(m)
    g = torch.Generator().manual_seed(3)
    sizes = {"prefix": 4, "c0": 5, "c1": 3, "query": 4}
    ids = {name: torch.randint(3, 60, (n,), generator=g) for name, n in sizes.items()}
    chain = Plan()
    start = 0
    for name, n in sizes.items():
        chain.add(Segment(name, input_ids=ids[name], start=start), sees=list(chain.names))
        start += n
    calls = []
    handle = m.base_model.register_forward_hook(lambda *args: calls.append(1))
    try:
        out = lm.forward(chain, backend="reuse")
    finally:
        handle.remove()
    assert len(calls) == 1
    assert torch.allclose(out.logits, reference(m, chain).logits, atol=TOL)
    parallel = Plan()  # prefix and c0 as in the chain, c1 beside c0, a new query: two segments come from the cache
    parallel.add(Segment("prefix", input_ids=ids["prefix"]))
    parallel.add(Segment("c0", input_ids=ids["c0"], start=4), sees=["prefix"])
    parallel.add(Segment("c1", input_ids=ids["c1"], start=4), sees=["prefix"])
    parallel.add(Segment("q", input_ids=[7, 8, 9], start=9), sees=["prefix", "c0", "c1"])
    hits = lm.cache.hits
    got = lm.forward(parallel, backend="reuse").logits
    assert lm.cache.hits - hits == 2
    assert torch.allclose(got, reference(m, parallel).logits, atol=TOL)
