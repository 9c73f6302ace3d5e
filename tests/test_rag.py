"""RAG layouts: positions and visibility, tokenization rules, errors, and model-level invariants (dense reference)."""
from __future__ import annotations

import itertools

import pytest
import torch

from structlm import Plan, PlanError
from structlm import rag
from tests.test_rag_support import run_plan, tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def positions(plan: Plan, name: str) -> list[int]:
    return plan[name].positions.tolist()


# --------------------------------------------------------------------------------------------- parallel
def test_parallel_positions_and_visibility():
    plan = rag.parallel(None, [[5, 6, 7], [8, 9], [10, 11, 12, 13]], [20, 21], prefix=[1, 2])
    assert plan.names == ["prefix", "context0", "context1", "context2", "query"]
    assert positions(plan, "prefix") == [0, 1]
    assert positions(plan, "context0") == [2, 3, 4]
    assert positions(plan, "context1") == [2, 3]
    assert positions(plan, "context2") == [2, 3, 4, 5]
    assert positions(plan, "query") == [6, 7]  # P + max L
    for name in ("context0", "context1", "context2"):
        assert plan.sees(name) == ["prefix"] and plan[name].role == "context" and plan[name].causal
    assert plan.sees("query") == ["prefix", "context0", "context1", "context2"]
    assert plan["prefix"].role == "prefix" and plan["query"].role == "query"
    # token-level: a context never sees another context
    mask = plan.dense_mask("bool")[0, 0]
    spans = plan.spans
    a, b = spans["context0"], spans["context1"]
    assert not mask[b[0]:b[1], a[0]:a[1]].any() and not mask[a[0]:a[1], b[0]:b[1]].any()
    assert mask[spans["query"][0], : spans["query"][0] + 1].all()


def test_parallel_without_prefix_and_without_contexts():
    plan = rag.parallel(None, [[5, 6], [7]], [9])
    assert plan.names == ["context0", "context1", "query"]
    assert positions(plan, "context0") == [0, 1] and positions(plan, "context1") == [0]
    assert positions(plan, "query") == [2] and plan.sees("context0") == []
    empty = rag.parallel(None, [], [9], prefix=[1, 2])
    assert empty.names == ["prefix", "query"] and positions(empty, "query") == [2]


def test_sequential_positions_and_visibility():
    plan = rag.sequential(None, [[5, 6, 7], [8, 9]], [20], prefix=[1, 2])
    assert plan.position_ids.tolist() == [list(range(8))]
    assert plan.sees("context1") == ["prefix", "context0"]
    assert plan.sees("query") == ["prefix", "context0", "context1"]
    dense = plan.dense_mask("bool")[0, 0]
    assert torch.equal(dense, torch.tril(torch.ones(8, 8, dtype=torch.bool)))


def test_strings_bos_once_and_no_stray_bos(tok):
    bos = tok.bos_token_id
    plan = rag.parallel(tok, ["the cat sat", "a dog"], "what is", prefix="question")
    assert plan["prefix"].input_ids.tolist() == [bos] + tok.encode("question", add_special_tokens=False)
    for name in ("context0", "context1", "query"):
        assert bos not in plan[name].input_ids.tolist()
    assert plan["context0"].input_ids.tolist() == tok.encode("the cat sat", add_special_tokens=False)
    # empty prefix with a BOS tokenizer: the prefix is BOS alone (the shared attention sink)
    bare = rag.parallel(tok, ["the cat"], "what")
    assert bare["prefix"].input_ids.tolist() == [bos]
    # a tokenizer without BOS: no prefix segment at all
    nobos = rag.parallel(tiny_tokenizer(bos=False), ["the cat"], "what")
    assert nobos.names == ["context0", "query"]
    # add_bos=False switches it off; add_bos=True forces it on id prefixes
    assert rag.parallel(tok, ["the"], "what", add_bos=False).names == ["context0", "query"]
    assert rag.parallel(tok, [[7]], [8], prefix=[9], add_bos=True)["prefix"].input_ids.tolist() == [bos, 9]
    # id lists are kept as they are
    assert rag.parallel(tok, [[7, 8]], [9], prefix=[1])["prefix"].input_ids.tolist() == [1]


def test_template_and_chat_template(tok):
    template = rag.Template(prefix="question {prefix}", context="doc {context}", query="{query} answer")
    plan = rag.parallel(tok, ["cat", "dog"], "what", prefix="the", template=template)
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    assert plan["prefix"].input_ids.tolist() == [tok.bos_token_id] + enc("question the")
    assert plan["context1"].input_ids.tolist() == enc("doc dog")
    assert plan["query"].input_ids.tolist() == enc("what answer")
    chat_tok = tiny_tokenizer()
    chat_tok.chat_template = (
        "{% for m in messages %}<s> {{ m['role'] }} {{ m['content'] }} </s> {% endfor %}"
        "{% if add_generation_prompt %}answer{% endif %}"
    )
    chat = rag.Template.chat(chat_tok)
    assert chat.prefix == "<s> user {prefix}" and chat.query == "{query} </s> answer"
    plan = rag.parallel(chat_tok, ["cat"], "what", prefix="read", template=chat)
    ids = plan["prefix"].input_ids.tolist()
    assert ids.count(chat_tok.bos_token_id) == 1 and ids[0] == chat_tok.bos_token_id  # literal BOS not doubled
    assert plan["query"].input_ids.tolist() == enc("what </s> answer")
    # a callable works too
    plan = rag.parallel(tok, ["cat"], "what", template=lambda part, text: f"{text} doc" if part == "context" else text)
    assert plan["context0"].input_ids.tolist() == enc("cat doc")


def test_bad_inputs(tok):
    with pytest.raises(ValueError, match="no tokenizer"):
        rag.parallel(None, ["the cat"], [1])
    with pytest.raises(ValueError, match="context 1 is empty"):
        rag.parallel(tok, ["the", ""], "what")
    with pytest.raises(ValueError, match="query is empty"):
        rag.parallel(None, [[1]], [])
    with pytest.raises(TypeError, match="list of texts"):
        rag.parallel(tok, "the cat", "what")
    with pytest.raises(ValueError, match="non-negative integers"):
        rag.parallel(None, [[1, -2]], [3])
    with pytest.raises(ValueError, match="non-negative integers"):
        rag.parallel(None, [[1, 2.5]], [3])
    with pytest.raises(ValueError, match="non-negative integers"):
        rag.parallel(None, [[1, True]], [3])
    with pytest.raises(ValueError, match="non-negative integers"):
        rag.parallel(None, [torch.tensor([[1, 2], [3, 4]])], [3])
    with pytest.raises(ValueError, match="reserved"):
        rag.parallel(None, [[1]], [3], names=["query"])
    with pytest.raises(ValueError, match="duplicate"):
        rag.parallel(None, [[1], [2]], [3], names=["a", "a"])
    with pytest.raises(ValueError, match="2 names for 1"):
        rag.parallel(None, [[1]], [3], names=["a", "b"])
    with pytest.raises(ValueError, match="exactly once"):
        rag.Template(context="no slot")
    with pytest.raises(ValueError, match="no chat_template"):
        rag.Template.chat(tok)
    with pytest.raises(TypeError, match="Template or a callable"):
        rag.parallel(tok, ["cat"], "what", template="oops")


# --------------------------------------------------------------------------------------------- Graph-KV
def test_graph_kv_one_round():
    # sources 0 (len 2) and 1 (len 3) -> target 2 (len 4); isolated chunk 3 (len 1)
    plan = rag.graph_kv(None, [[1, 2], [3, 4, 5], [6, 7, 8, 9], [10]], [(0, 2), (1, 2)], [11, 12], prefix=[30])
    assert plan.names == ["prefix", "chunk0", "chunk1", "chunk3", "chunk2", "query"]
    assert positions(plan, "chunk0") == [1, 2] and positions(plan, "chunk1") == [1, 2, 3]
    assert positions(plan, "chunk3") == [1]
    assert positions(plan, "chunk2") == [4, 5, 6, 7]  # right after the longest source
    assert positions(plan, "query") == [8, 9]
    assert plan.sees("chunk2") == ["prefix", "chunk0", "chunk1"]
    assert plan.sees("chunk0") == ["prefix"] and plan.sees("chunk3") == ["prefix"]
    assert plan.sees("query") == ["prefix", "chunk0", "chunk1", "chunk3", "chunk2"]
    assert [plan[n].role for n in plan.names] == ["prefix", "source", "source", "source", "target", "query"]
    plan.schedule()  # acyclic


def test_graph_kv_multi_round_positions():
    # a chain of equal-length chunks: round t at [P + tL, P + (t+1)L)
    L, P = 3, 2
    chunks = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12], [13, 14, 15]]
    edges = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)]
    for spacing in ("tight", "rounds"):
        plan = rag.graph_kv(None, chunks, edges, [20], prefix=[30, 31], spacing=spacing)
        assert rag.graph_kv_rounds(5, edges) == [0, 1, 1, 2, 3]
        for i, r in enumerate([0, 1, 1, 2, 3]):
            assert positions(plan, f"chunk{i}") == list(range(P + r * L, P + (r + 1) * L)), (spacing, i)
        assert positions(plan, "query") == [P + 4 * L]
        assert plan.sees("chunk3") == ["prefix", "chunk1", "chunk2"]  # the updated round-1 copies
    # unequal lengths: "tight" follows each target's own longest source, "rounds" uses the global L
    chunks = [[1], [2, 3, 4, 5], [6, 7], [8]]
    edges = [(0, 2), (2, 3)]
    tight = rag.graph_kv(None, chunks, edges, [9])
    assert positions(tight, "chunk2") == [1, 2] and positions(tight, "chunk3") == [3]
    assert positions(tight, "query") == [4]
    rounds = rag.graph_kv(None, chunks, edges, [9], spacing="rounds")
    assert positions(rounds, "chunk2") == [4, 5] and positions(rounds, "chunk3") == [8]
    assert positions(rounds, "query") == [9]


def test_graph_kv_errors():
    with pytest.raises(PlanError, match="cycle"):
        rag.graph_kv(None, [[1], [2], [3]], [(0, 1), (1, 2), (2, 0)], [4])
    with pytest.raises(ValueError, match="self-loop"):
        rag.graph_kv(None, [[1], [2]], [(1, 1)], [4])
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        rag.graph_kv(None, [[1], [2]], [(0, 2)], [4])
    with pytest.raises(ValueError, match="pair"):
        rag.graph_kv(None, [[1], [2]], [(0, 1, 2)], [4])
    with pytest.raises(ValueError, match="spacing"):
        rag.graph_kv(None, [[1], [2]], [], [4], spacing="wide")


def test_graph_kv_rag_variants():
    chunks = [[1], [2, 3], [4], [5, 6, 7], [8]]  # ascending relevance: chunk4 is the best
    top1 = rag.graph_kv_rag(None, chunks, [9], top_m=1)
    assert [top1[n].role for n in top1.names[:-1]] == ["source"] + ["target"] * 4
    assert top1.names[0] == "chunk4" and all(top1.sees(f"chunk{i}") == ["chunk4"] for i in range(4))
    top3 = rag.graph_kv_rag(None, chunks, [9], top_m=3, scores=[0.9, 0.1, 0.8, 0.7, 0.2])
    assert top3.sees("chunk1") == ["chunk0", "chunk2", "chunk3"] and top3.sees("chunk4") == top3.sees("chunk1")
    assert positions(top3, "chunk1") == [3, 4]  # after the longest source (chunk3, 3 tokens)
    chain = rag.graph_kv_rag(None, chunks, [9], top_m=[1, 2])  # Top-1 -> Top-2..3 -> rest
    assert chain.sees("chunk3") == ["chunk4"] and chain.sees("chunk2") == ["chunk4"]
    assert sorted(chain.sees("chunk0")) == ["chunk2", "chunk3"] and sorted(chain.sees("chunk1")) == ["chunk2", "chunk3"]
    assert positions(chain, "chunk0") == [4] and positions(chain, "chunk1") == [4, 5]  # after chunk3 (1..3)
    full = rag.graph_kv_rag(None, chunks, [9], top_m="full")
    assert len(full.names) == 11
    assert full.sees("chunk1.target") == [f"chunk{i}" for i in range(5)]
    assert positions(full, "chunk1.target") == [3, 4] and positions(full, "query") == [6]
    full.schedule()
    with pytest.raises(ValueError, match="at least one chunk must remain"):
        rag.graph_kv_rag(None, chunks, [9], top_m=5)
    with pytest.raises(ValueError, match="top_m"):
        rag.graph_kv_rag(None, chunks, [9], top_m="half")
    with pytest.raises(ValueError, match="scores"):
        rag.graph_kv_rag(None, chunks, [9], scores=[1.0])


def test_citation_ego_graphs():
    plan = rag.citation(None, [1, 2, 3], [[4, 5], [6]], [9], prefix=[30])
    assert plan.sees("g0.centre") == ["prefix", "g0.ref0", "g0.ref1"]
    assert positions(plan, "g0.centre") == [3, 4, 5]
    two = rag.ego_graphs(None, [([1, 2], [[4, 5, 6]]), ([3], [[7], [8, 9]])], [10], prefix=[30])
    assert positions(two, "g0.centre") == [4, 5] and positions(two, "g1.centre") == [3]
    assert two.sees("g1.centre") == ["prefix", "g1.ref0", "g1.ref1"]
    assert positions(two, "query") == [6]
    with pytest.raises(ValueError, match="pair"):
        rag.ego_graphs(None, [[1, 2, 3]], [10])


def test_plans_survive_json():
    for plan in (
        rag.parallel(None, [[5, 6], [7]], [9], prefix=[1]),
        rag.graph_kv_rag(None, [[1], [2, 3], [4]], [9], top_m="full"),
    ):
        assert Plan.from_json(plan.to_json()) == plan


# --------------------------------------------------------------------------------------------- model-level
CONTEXTS = [[5, 6, 7, 8], [9, 10], [11, 12, 13], [14, 15, 16, 17, 18]]
PREFIX = [1, 2, 3]
QUERY = [20, 21, 22]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_each_context_equals_alone_after_prefix(arch):
    """A context's hidden states in the parallel plan == prefix + that context encoded the ordinary way."""
    model = tiny_model(arch)
    plan = rag.parallel(None, CONTEXTS, QUERY, prefix=PREFIX)
    out = run_plan(model, plan)
    spans = plan.spans
    for i, ctx in enumerate(CONTEXTS):
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([PREFIX + ctx]), output_hidden_states=True)
        a, b = spans[f"context{i}"]
        for layer, (h_plan, h_alone) in enumerate(zip(out.hidden_states, alone.hidden_states)):
            torch.testing.assert_close(h_plan[0, a:b], h_alone[0, len(PREFIX):], atol=1e-5, rtol=1e-5,
                                       msg=f"context {i} layer {layer}")
        torch.testing.assert_close(out.logits[0, a:b], alone.logits[0, len(PREFIX):], atol=1e-5, rtol=1e-5)


def test_sequential_equals_plain_forward():
    model = tiny_model("llama")
    plan = rag.sequential(None, CONTEXTS, QUERY, prefix=PREFIX)
    out = run_plan(model, plan)
    with torch.no_grad():
        ref = model(input_ids=plan.input_ids)
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-5, rtol=1e-5)


def test_permuting_contexts_leaves_states_and_query_logits():
    model = tiny_model("llama")
    base = rag.parallel(None, CONTEXTS, QUERY, prefix=PREFIX)
    ref = run_plan(model, base)
    for perm in itertools.islice(itertools.permutations(range(len(CONTEXTS))), 1, 24, 5):
        plan = rag.parallel(None, [CONTEXTS[i] for i in perm], QUERY, prefix=PREFIX,
                            names=[f"context{i}" for i in perm])
        out = run_plan(model, plan)
        for name in base.names:
            a, b = base.spans[name]
            c, d = plan.spans[name]
            torch.testing.assert_close(out.hidden_states[-1][0, c:d], ref.hidden_states[-1][0, a:b],
                                       atol=1e-5, rtol=1e-5)
        qa, qb = base.spans["query"]
        torch.testing.assert_close(out.logits[0, qa:qb], ref.logits[0, qa:qb], atol=1e-5, rtol=1e-5)


def test_front_end_does_not_import_the_runtime():
    import subprocess
    import sys

    # data flows one way: the core and the front-ends never load the runtime (APE lives in structlm.hf)
    code = ("import sys, structlm.plan, structlm.masks, structlm.rag as r, structlm.graph, structlm.code; "
            "assert not any(m.startswith('structlm.hf') for m in sys.modules), sorted(sys.modules); "
            "assert not hasattr(r, 'APE')")
    subprocess.run([sys.executable, "-c", code], check=True)
