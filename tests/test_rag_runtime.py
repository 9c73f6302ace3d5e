"""RAG plans and APE through StructuredLM: dense and reuse backends, caching across queries, generation,
position-independent reuse (re-rotated cached keys)."""
from __future__ import annotations

import pytest
import torch

from structlm import Plan, Segment, rag
from structlm.hf import StructuredLM
from structlm.hf.attention import APE, IMPLEMENTATION
from tests.test_rag_support import run_plan, tiny_model

CONTEXTS = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14], [15, 16, 17, 18]]
PREFIX = [1, 2, 3]
QUERY = [20, 21, 22]


def plan_for(contexts=CONTEXTS, query=QUERY, prefix=PREFIX, names=None):
    return rag.parallel(None, contexts, query, prefix=prefix, names=names)


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


def close(a, b, atol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2"])
def test_backends_agree_with_and_without_ape(arch):
    model = tiny_model(arch)
    lm = StructuredLM(model)
    plan = plan_for()
    ref = run_plan(model, plan, attn="eager").logits
    for backend in ("dense", "reuse"):
        close(lm.forward(plan, backend=backend).logits, ref)
        close(lm.forward(plan, backend=backend, attention=APE(1.0, 1.0)).logits, ref)
    ape = APE(0.6, 0.8)
    dense = lm.forward(plan, backend="dense", attention=ape).logits
    reuse = lm.forward(plan, backend="reuse", attention=ape).logits
    assert model.config._attn_implementation == "eager"  # restored after every call
    direct = run_plan(model, plan, attn=IMPLEMENTATION, **ape.forward_kwargs(plan, torch.arange(len(plan)),
                                                                                torch.arange(len(plan)))).logits
    close(dense, direct)
    close(reuse, direct)


def test_contexts_cached_once_across_queries(llama):
    lm = StructuredLM(llama)
    ape = APE()
    first = lm.forward(plan_for(), backend="reuse", attention=ape)
    assert lm.cache.hits == 0 and lm.cache.misses == len(CONTEXTS) + 1  # query segments are never cached
    hits = lm.cache.hits
    second_plan = plan_for(query=[23, 24], contexts=CONTEXTS[::-1], names=[f"context{i}" for i in range(4)][::-1])
    second = lm.forward(second_plan, backend="reuse", attention=ape)
    assert lm.cache.hits - hits == 1 + len(CONTEXTS)  # prefix + every context reused, nothing recomputed
    fresh = StructuredLM(llama).forward(second_plan, backend="dense", attention=ape)
    close(second.logits, fresh.logits)
    # the same contexts without APE come from the same cache entries (APE never touches context rows)
    hits = lm.cache.hits
    lm.forward(plan_for(query=[25]), backend="reuse")
    assert lm.cache.hits - hits == 1 + len(CONTEXTS)
    assert first.logits.shape[1] == len(plan_for())


def test_each_context_alone_and_permutation_through_runtime(llama):
    lm = StructuredLM(llama)
    plan = plan_for()
    out = lm.forward(plan, backend="reuse", output_hidden_states=True)
    spans = plan.spans
    for i, ctx in enumerate(CONTEXTS):
        alone = lm.forward(rag.sequential(None, [ctx], [0], prefix=PREFIX), backend="dense", output_hidden_states=True)
        a, b = spans[f"context{i}"]
        for h_plan, h_alone in zip(out.hidden_states, alone.hidden_states):
            close(h_plan[0, a:b], h_alone[0, len(PREFIX):len(PREFIX) + len(ctx)])
    ape = APE(0.7, 0.9)
    ref = lm.forward(plan, backend="reuse", attention=ape)
    q0, q1 = spans["query"]
    for perm in ([3, 2, 1, 0], [1, 3, 0, 2]):
        permuted = plan_for(contexts=[CONTEXTS[i] for i in perm], names=[f"context{i}" for i in perm])
        for backend in ("dense", "reuse"):
            out = lm.forward(permuted, backend=backend, attention=ape)
            close(out.logits[0, q0:q1], ref.logits[0, q0:q1])
            for name in plan.names:
                close(out.logits[0, slice(*permuted.spans[name])], ref.logits[0, slice(*spans[name])])


def greedy_reference(model, contexts, query, ape, steps):
    """Greedy decoding by full dense recomputation: generated tokens join the query segment."""
    tokens: list[int] = []
    for _ in range(steps):
        plan = plan_for(contexts=contexts, query=query + tokens)
        idx = torch.arange(len(plan))
        logits = run_plan(model, plan, attn=IMPLEMENTATION, **ape.forward_kwargs(plan, idx, idx)).logits
        tokens.append(int(logits[0, -1].argmax()))
    return tokens


def test_generate_with_ape_matches_full_recompute(llama):
    lm = StructuredLM(llama)
    ape = APE(0.5, 0.8)
    new = lm.generate(plan_for(), max_new_tokens=5, attention=ape, eos_token_id=[])
    assert new[0].tolist() == greedy_reference(llama, CONTEXTS, QUERY, ape, 5)
    plain = lm.generate(plan_for(), max_new_tokens=5, eos_token_id=[])
    assert plain[0].tolist() == greedy_reference(llama, CONTEXTS, QUERY, APE(1.0, 1.0), 5)


def test_graph_kv_plans_run_on_every_backend(llama):
    lm = StructuredLM(llama)
    for plan in (
        rag.graph_kv_rag(None, CONTEXTS, QUERY, top_m=1, prefix=PREFIX),
        rag.graph_kv_rag(None, CONTEXTS, QUERY, top_m=[1, 2], prefix=PREFIX),
        rag.graph_kv_rag(None, CONTEXTS, QUERY, top_m="full", prefix=PREFIX),
        rag.citation(None, CONTEXTS[0], CONTEXTS[1:], QUERY, prefix=PREFIX),
    ):
        ref = run_plan(llama, plan, attn="eager").logits
        close(lm.forward(plan, backend="dense").logits, ref)
        close(lm.forward(plan, backend="reuse").logits, ref)


# --------------------------------------------------------------------------------------------- reposition
def test_reposition_is_exact_for_contexts_that_see_nothing(llama):
    """Contexts without a prefix see only themselves: moved by re-rotation == fresh encoding there."""
    lm = StructuredLM(llama, reposition="exact")
    lm.forward(rag.parallel(None, CONTEXTS, QUERY), backend="reuse")
    # place every context at start 7, after a 7-token head they do not see
    moved = Plan()
    moved.add(Segment("head", input_ids=list(range(40, 47)), role="prefix"))
    for i, ctx in enumerate(CONTEXTS):
        moved.add(Segment(f"context{i}", input_ids=ctx, start=7, role="context"))
    moved.add(Segment("query", input_ids=QUERY, start=12, role="query"), sees=moved.names)
    before = lm.repositioned
    out = lm.forward(moved, backend="reuse", attention=APE())
    assert lm.repositioned - before == len(CONTEXTS)
    fresh = StructuredLM(llama).forward(moved, backend="dense", attention=APE())
    close(out.logits, fresh.logits)


def reposition_deviation(model, shift: int, prefix=PREFIX, contexts=CONTEXTS) -> tuple[list[float], float]:
    """Per-layer max |Δ| of cached context keys, and max |Δ| of query logits, when contexts that see a prefix
    are moved ``shift`` positions by re-rotation instead of being encoded there afresh."""
    lm = StructuredLM(model, reposition="any")
    lm.forward(rag.parallel(None, contexts, QUERY, prefix=prefix), backend="reuse")
    moved = Plan()
    moved.add(Segment("prefix", input_ids=prefix, role="prefix"))
    names = []
    for i, ctx in enumerate(contexts):
        moved.add(Segment(f"context{i}", input_ids=ctx, start=len(prefix) + shift, role="context"), sees=["prefix"])
        names.append(f"context{i}")
    top = len(prefix) + shift + max(len(c) for c in contexts)
    moved.add(Segment("query", input_ids=QUERY, start=top, role="query"), sees=["prefix"] + names)
    state = lm.prefill(moved)
    assert lm.repositioned == len(contexts)
    fresh_lm = StructuredLM(model)
    fresh_state = fresh_lm.prefill(moved)
    layers = len(state.entries[names[0]].keys)
    key_dev = [max(float((state.entries[n].keys[i] - fresh_state.entries[n].keys[i]).abs().max()) for n in names)
               for i in range(layers)]
    q = slice(*moved.spans["query"])
    got = lm.forward(moved, backend="reuse").logits[0, q]
    want = fresh_lm.forward(moved, backend="reuse").logits[0, q]
    return key_dev, float((got - want).abs().max())


def test_reposition_with_a_prefix_is_approximate_and_measured(llama):
    """Contexts that saw a prefix: first-layer keys move exactly, deeper layers deviate (documented)."""
    key_dev, logit_dev = reposition_deviation(llama, shift=5)
    assert key_dev[0] < 1e-5  # layer-0 keys depend on the token and its position only: re-rotation is exact
    assert max(key_dev[1:]) > 1e-4 and logit_dev > 1e-5  # deeper layers saw the prefix at another distance
    lm = StructuredLM(llama, reposition="exact")
    lm.forward(plan_for(), backend="reuse")
    before = lm.repositioned
    moved = Plan()
    moved.add(Segment("prefix", input_ids=PREFIX, role="prefix"))
    moved.add(Segment("context0", input_ids=CONTEXTS[0], start=8, role="context"), sees=["prefix"])
    lm.forward(moved, backend="reuse")
    assert lm.repositioned == before  # "exact" refuses to move a segment that sees something


@pytest.mark.slow
def test_rag_plans_on_the_flex_backend(llama):
    """Compiled FlexAttention (several seconds per plan on CPU): same numbers as dense; APE is refused there."""
    lm = StructuredLM(llama)
    for plan in (plan_for(), rag.graph_kv_rag(None, CONTEXTS, QUERY, top_m="full", prefix=PREFIX)):
        close(lm.forward(plan, backend="flex").logits, lm.forward(plan, backend="dense").logits)
    from structlm.hf import BackendError

    with pytest.raises(BackendError, match="dense and reuse"):
        lm.forward(plan_for(), backend="flex", attention=APE())


def test_score_with_ape(llama):
    lm = StructuredLM(llama)
    plan = plan_for()
    plain = lm.score(plan, ["query"])
    assert lm.score(plan, ["query"], attention=APE(1.0, 1.0))["query"] == pytest.approx(plain["query"], abs=1e-4)
    assert lm.score(plan, ["query"], attention=APE(0.5, 0.8))["query"] != pytest.approx(plain["query"], abs=1e-4)
