"""Property tests of the RAG layouts (hypothesis): the position and visibility rules hold for any input."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from structlm import PlanError, rag
from tests.test_rag_support import run_plan, tiny_model

ids = st.lists(st.integers(1, 60), min_size=1, max_size=7)


@settings(max_examples=60, deadline=None)
@given(contexts=st.lists(ids, max_size=6), query=ids, prefix=st.lists(st.integers(1, 60), max_size=4))
def test_parallel_rules(contexts, query, prefix):
    plan = rag.parallel(None, contexts, query, prefix=prefix)
    p = len(prefix)
    for i, ctx in enumerate(contexts):
        seg = plan[f"context{i}"]
        assert seg.positions.tolist() == list(range(p, p + len(ctx)))
        assert plan.sees(seg.name) == (["prefix"] if prefix else [])
    assert plan["query"].start == p + max((len(c) for c in contexts), default=0)
    assert plan.sees("query") == [n for n in plan.names if n != "query"]
    seq = rag.sequential(None, contexts, query, prefix=prefix)
    assert seq.position_ids.tolist() == [list(range(len(seq)))]
    assert torch.equal(seq.dense_mask("bool")[0, 0], torch.tril(torch.ones(len(seq), len(seq), dtype=torch.bool)))
    assert torch.equal(seq.input_ids, plan.input_ids)


@st.composite
def dags(draw):
    n = draw(st.integers(1, 7))
    chunks = [draw(ids) for _ in range(n)]
    order = draw(st.permutations(range(n)))  # a hidden topological order
    edges = []
    for a in range(n):
        for b in range(a + 1, n):
            if draw(st.booleans()):
                edges.append((order[a], order[b]))
    return chunks, edges


@settings(max_examples=80, deadline=None)
@given(dag=dags(), prefix=st.lists(st.integers(1, 60), max_size=3), spacing=st.sampled_from(["tight", "rounds"]))
def test_graph_kv_rules(dag, prefix, spacing):
    chunks, edges = dag
    plan = rag.graph_kv(None, chunks, edges, [9], prefix=prefix, spacing=spacing)
    plan.schedule()  # acyclic, so the reuse backend can run it
    p = len(prefix)
    rounds = rag.graph_kv_rounds(len(chunks), edges)
    longest = max(len(c) for c in chunks)
    ends = []
    for i, chunk in enumerate(chunks):
        seg = plan[f"chunk{i}"]
        sources = sorted({s for s, t in edges if t == i})
        assert sorted(plan.sees(seg.name)) == sorted((["prefix"] if prefix else []) + [f"chunk{s}" for s in sources])
        assert seg.role == ("source" if not sources else "target")
        assert rounds[i] == (0 if not sources else 1 + max(rounds[s] for s in sources))
        for s in sources:  # a target sits after each of its sources
            assert seg.start >= plan[f"chunk{s}"].end_position
            assert plan.index(seg.name) > plan.index(f"chunk{s}")
        if spacing == "tight":
            assert seg.start == max((plan[f"chunk{s}"].end_position for s in sources), default=p)
        else:
            assert seg.start == p + rounds[i] * longest
        ends.append(seg.end_position)
    assert plan["query"].start == max(ends)
    assert plan.sees("query") == [n for n in plan.names if n != "query"]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 6), data=st.data())
def test_graph_kv_rejects_every_cycle(n, data):
    cycle = data.draw(st.permutations(range(n)))
    edges = [(cycle[i], cycle[(i + 1) % n]) for i in range(n)]
    with pytest.raises(PlanError, match="cycle"):
        rag.graph_kv(None, [[1]] * n, edges, [9])


def test_ego_graph_order_does_not_change_the_query():
    """Ego-graphs share position ranges: swapping them leaves every state and the query's logits unchanged."""
    model = tiny_model("llama")
    g0 = ([1, 2, 3], [[4, 5], [6, 7, 8]])
    g1 = ([9, 10], [[11], [12, 13, 14, 15]])
    a = rag.ego_graphs(None, [g0, g1], [20, 21], prefix=[30, 31])
    b = rag.ego_graphs(None, [g1, g0], [20, 21], prefix=[30, 31])
    out_a, out_b = run_plan(model, a), run_plan(model, b)
    rename = {"g0": "g1", "g1": "g0"}
    for name in a.names:
        other = rename.get(name[:2], name[:2]) + name[2:] if name.startswith("g") else name
        torch.testing.assert_close(out_a.logits[0, slice(*a.spans[name])], out_b.logits[0, slice(*b.spans[other])],
                                   atol=1e-5, rtol=1e-5)
