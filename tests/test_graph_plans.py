"""Plans from graphs: NT-LLM node tokens in a prompt, Graph-KV over text-attributed graphs (via rag.graph_kv)."""
from __future__ import annotations

import networkx as nx
import pytest
import torch

from structlm.graph import anchor_distances, select_anchors
from structlm.graph.plans import ego_graph_plan, graph_kv_plan, neighbourhood, node_token_plan
from structlm.graph.tokens import NodeTokenizer
from structlm.rag import demo_tokenizer, graph_kv


def texts_for(graph):
    return {node: f"about node {node} and friends" for node in graph.nodes()}


def tokenizer_for(graph):
    return demo_tokenizer(list(texts_for(graph).values()) + ["who is central ?", "Answer briefly ."])


def test_ego_graph_one_hop_is_graph_kv_with_neighbours_as_sources():
    graph = nx.karate_club_graph()
    tok = tokenizer_for(graph)
    plan = ego_graph_plan(tok, graph, texts_for(graph), 0, "who is central ?", prefix="Answer briefly .")
    neighbours = sorted(graph.neighbors(0))
    centre = plan["node:0"]
    assert centre.role == "target"
    assert sorted(plan.sees("node:0")) == sorted(["prefix"] + [f"node:{v}" for v in neighbours])
    starts = {plan[f"node:{v}"].start for v in neighbours}
    assert len(starts) == 1  # sources share one position range
    assert centre.start == starts.pop() + max(len(plan[f"node:{v}"]) for v in neighbours)
    assert set(plan.sees("query")) == set(plan.names) - {"query"}
    # the layout is rag.graph_kv's, not a copy: the same chunks and edges give the same plan
    nodes, edges = neighbourhood(graph, [0], hops=1)
    texts = texts_for(graph)
    direct = graph_kv(tok, [texts[v] for v in nodes], edges, "who is central ?", prefix="Answer briefly .",
                      names=[f"node:{v}" for v in nodes])
    assert plan == direct


def test_k_hop_rings_become_rounds_pointing_inwards():
    graph = nx.path_graph(7)
    tok = tokenizer_for(graph)
    plan = graph_kv_plan(tok, graph, texts_for(graph), "who is central ?", targets=[3], hops=2)
    assert sorted(plan.names) == sorted(["prefix", "query"] + [f"node:{v}" for v in (1, 2, 3, 4, 5)])
    assert plan["node:1"].role == "source" and plan["node:5"].role == "source"
    assert plan.sees("node:2") == ["prefix", "node:1"] and plan.sees("node:4") == ["prefix", "node:5"]
    assert sorted(plan.sees("node:3")) == ["node:2", "node:4", "prefix"]
    assert plan["node:3"].start > plan["node:2"].start > plan["node:1"].start
    assert plan.is_acyclic()


def test_neighbourhood_follows_arcs_and_drops_arcs_inside_a_layer():
    graph = nx.DiGraph([(0, 1), (1, 2), (3, 2), (2, 4), (0, 3), (1, 3)])
    nodes, edges = neighbourhood(graph, [2], hops=2)
    assert nodes == [0, 1, 3, 2]  # outer layer first; 4 is downstream of 2, not a neighbour
    named = {(nodes[u], nodes[v]) for u, v in edges}
    assert named == {(0, 1), (0, 3), (1, 2), (3, 2)}  # (1, 3) lies inside layer 1
    labelled = nx.relabel_nodes(nx.star_graph(3), {0: "hub", 1: "a", 2: "b", 3: "c"})
    nodes, edges = neighbourhood(labelled, ["a"], hops=2)
    assert nodes[-1] == "a" and set(nodes) == {"a", "b", "c", "hub"}


def test_graph_plan_errors():
    graph = nx.star_graph(5)
    tok = tokenizer_for(graph)
    with pytest.raises(ValueError, match="more than max_nodes=3"):
        ego_graph_plan(tok, graph, texts_for(graph), 0, "who is central ?", max_nodes=3)
    with pytest.raises(KeyError, match="no text for node 1"):
        ego_graph_plan(tok, graph, {0: "about node 0"}, 0, "who is central ?")
    with pytest.raises(ValueError, match="hops must be a non-negative int"):
        neighbourhood(graph, [0], hops=-1)
    with pytest.raises(ValueError, match="at least one target"):
        neighbourhood(graph, [], hops=1)


def test_node_token_plan_is_a_causal_prompt_with_soft_node_segments():
    graph = nx.karate_club_graph()
    anchors = select_anchors(graph, radius=1, coverage=1.0)
    distances = anchor_distances(graph, anchors)
    tokenizer = NodeTokenizer(len(anchors), hidden_size=12, tokens_per_node=2, embed_dim=8)
    tok = tokenizer_for(graph)
    tokens = tokenizer(distances[[0, 33]])
    plan = node_token_plan(tok, tokens, prefix="Answer briefly .", text="about node 0", query="who is central ?",
                           names=["node0", "node33"])
    assert [s.name for s in plan] == ["prefix", "node0", "node33", "text", "query"]
    assert plan["node0"].is_soft and plan["node0"].role == "node" and len(plan["node0"]) == 2
    n = len(plan)
    assert plan.position_ids.tolist() == [list(range(n))]
    assert torch.equal(plan.dense_mask("bool").reshape(n, n), torch.ones(n, n, dtype=torch.bool).tril())
    embedding = torch.nn.Embedding(len(tok), 12)
    embeds = plan.inputs_embeds(embedding)
    assert embeds.shape == (1, n, 12)
    embeds.sum().backward()  # gradients reach the node tokenizer through the soft segments
    assert tokenizer.projector[-1].weight.grad is not None
    assert plan.has_soft_tokens
    with pytest.raises(ValueError, match="2 names for 1 nodes"):
        node_token_plan(tok, torch.zeros(1, 12), names=["a", "b"])
    with pytest.raises(ValueError, match="at least one node"):
        node_token_plan(tok, [])


def test_cli_graph_command(tmp_path, capsys):
    from structlm.cli import main

    edges = tmp_path / "edges.txt"
    edges.write_text("# a path\na b\nb c\nc d\n", encoding="utf-8")
    assert main(["graph", "--edges", str(edges), "--radius", "1", "--coverage", "1.0",
                 "--npy", str(tmp_path / "d.npy")]) == 0
    out = capsys.readouterr().out
    assert "2 anchors (coverage 1.0000): ['b', 'c']" in out
    import numpy as np

    assert np.load(tmp_path / "d.npy").tolist() == [[1, 2], [0, 1], [1, 0], [2, 1]]
    assert main(["graph", "--builtin", "karate", "--coverage", "1.5"]) == 2
    assert "coverage must be in (0, 1]" in capsys.readouterr().err


def test_docs_python_blocks_run(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    page = Path(__file__).resolve().parents[1] / "docs" / "graphs.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)
    assert namespace["embeds"].shape[-1] == 256 and namespace["data"].anchor_pe.shape[0] == 34
