"""Plans from graphs: NT-LLM node soft tokens inside a prompt, and Graph-KV plans over text-attributed graphs.

* :func:`node_token_plan`: NT-LLM puts each node's soft tokens (from :class:`~structlm.graph.NodeTokenizer`)
  right after the prompt prefix, with ordinary positions and the ordinary causal mask; here each node is one
  embeddings segment, so the same plan runs on every backend and node segments can be cached like any other.
* :func:`graph_kv_plan` / :func:`ego_graph_plan`: every node's text is a chunk and a node sees its neighbours'
  chunks. The layout (shared position ranges, rounds, the query seeing all) is :func:`structlm.rag.graph_kv`'s;
  this module only chooses chunks and edges from the graph, so the layout is written once.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Mapping, Sequence, Union

import numpy as np
import torch

from structlm.graph.distances import nearest_from_index
from structlm.graph.input import as_graph
from structlm.layouts import Part, chain
from structlm.plan import Plan
from structlm.rag.graphs import graph_kv
from structlm.text import Text, bos_id, token_ids, with_bos

__all__ = ["node_token_plan", "neighbourhood", "graph_kv_plan", "ego_graph_plan"]

Texts = Union[Mapping[Hashable, Text], Sequence[Text], Callable[[Hashable], Text]]


def node_token_plan(
    tokenizer: Any,
    node_tokens: torch.Tensor | Sequence[torch.Tensor],
    *,
    prefix: Text = "",
    text: Text = "",
    query: Text = "",
    names: Sequence[str] | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """NT-LLM prompt: ``prefix, node tokens..., text, query`` as one causal sequence.

    ``node_tokens`` is :class:`~structlm.graph.NodeTokenizer` output ``[nodes, tokens_per_node, hidden]``,
    a ``[nodes, hidden]`` tensor (one token each) or a list of ``[len, hidden]`` tensors; each node becomes one
    embeddings segment (role ``node``, names ``node{i}`` unless ``names`` are given). Tensors are kept as they are,
    so gradients reach the tokenizer when the plan is run for training. Every segment sees all earlier ones and
    positions run on: NT-LLM changes neither positions nor the mask. Empty text parts are left out. ``add_bos``
    (default: whether ``tokenizer`` adds one) puts the tokenizer's BOS first.
    """
    if isinstance(node_tokens, torch.Tensor):
        if node_tokens.dim() == 2:
            node_tokens = node_tokens.unsqueeze(1)
        if node_tokens.dim() != 3:
            raise ValueError(f"node_tokens must be [nodes, tokens, hidden] or [nodes, hidden], got "
                             f"{list(node_tokens.shape)}")
        pieces = list(node_tokens.unbind(0))
    else:
        pieces = list(node_tokens)
    if not pieces:
        raise ValueError("node_token_plan needs at least one node")
    names = [f"node{i}" for i in range(len(pieces))] if names is None else list(names)
    if len(names) != len(pieces):
        raise ValueError(f"{len(names)} names for {len(pieces)} nodes")
    prefix_ids = token_ids(tokenizer, prefix, "prefix")
    if add_bos if add_bos is not None else bos_id(tokenizer) is not None:
        prefix_ids = with_bos(prefix_ids, tokenizer.bos_token_id)
    parts = [Part("prefix", input_ids=prefix_ids, role="prefix")] if prefix_ids.numel() else []
    parts += [Part(name, embeds=piece, role="node") for name, piece in zip(names, pieces)]
    for name, value in (("text", text), ("query", query)):
        ids = token_ids(tokenizer, value, name)
        if ids.numel():
            parts.append(Part(name, input_ids=ids, role=name))
    plan = Plan()
    chain(plan, parts)
    return plan


def neighbourhood(graph: Any, targets: Sequence[Hashable], hops: int = 1,
                  max_nodes: int | None = None) -> tuple[list[Hashable], list[tuple[int, int]]]:
    """Nodes within ``hops`` of ``targets`` and Graph-KV edges pointing one layer inwards.

    Layer ``d`` holds the nodes whose shortest path *to* a target has ``d`` arcs (for directed graphs messages flow
    along arcs, as in PyG: a node sees its in-neighbours). The edge ``(u, v)`` (``v`` sees ``u``) is kept for every
    arc ``u -> v`` from layer ``d + 1`` to layer ``d``; arcs inside a layer are dropped, which keeps the plan
    acyclic, as Graph-KV's encode-on-top-of-sources needs. Returns the caller's node ids (sorted by layer, outer
    first, then by node order) and edges as positions in that list.
    """
    g = as_graph(graph)
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
        raise ValueError(f"hops must be a non-negative int, got {hops!r}")
    target_index = g.index(targets)
    if not len(target_index):
        raise ValueError("neighbourhood needs at least one target node")
    layer = nearest_from_index(g.reverse, target_index, max_distance=hops)
    chosen = np.flatnonzero(layer >= 0)
    chosen = chosen[np.lexsort((chosen, -layer[chosen]))]
    if max_nodes is not None and len(chosen) > max_nodes:
        raise ValueError(f"{len(chosen)} nodes lie within {hops} hops of the targets, more than max_nodes={max_nodes}")
    position = np.full(g.num_nodes, -1, dtype=np.int64)
    position[chosen] = np.arange(len(chosen))
    src = np.repeat(np.arange(g.num_nodes), g.out_degree)
    dst = g.indices.astype(np.int64)
    keep = (position[src] >= 0) & (position[dst] >= 0) & (layer[src] == layer[dst] + 1)
    edges = [(int(u), int(v)) for u, v in zip(position[src[keep]], position[dst[keep]])]
    ids = g.ids(chosen)
    return (ids.tolist() if isinstance(ids, np.ndarray) else ids), edges


def _node_text(texts: Texts, node: Hashable, index: int) -> Text:
    if callable(texts):
        return texts(node)
    if isinstance(texts, Mapping):
        try:
            return texts[node]
        except KeyError:
            raise KeyError(f"no text for node {node!r}") from None
    return texts[index]


def _node_names(nodes: Sequence[Hashable]) -> list[str]:
    names = [f"node:{node}" for node in nodes]
    return names if len(set(names)) == len(names) else [f"node#{i}" for i in range(len(nodes))]


def graph_kv_plan(tokenizer: Any, graph: Any, texts: Texts, query: Text, *, targets: Sequence[Hashable],
                  hops: int = 1, prefix: Text = "", max_nodes: int | None = None, **layout: Any) -> Plan:
    """Graph-KV over a text-attributed graph: each node within ``hops`` of ``targets`` is a chunk of its text.

    Edges come from :func:`neighbourhood` (a node sees its neighbours one layer farther out), so with ``hops=k``
    the outermost ring is encoded first and each ring inwards is a later Graph-KV round, ending at the targets.
    ``texts`` maps node id -> text (a mapping, a callable, or a sequence in the graph's node order). Segment names
    are ``node:<id>``. ``layout`` goes to :func:`structlm.rag.graph_kv` (``spacing``, ``template``, ``add_bos``).
    """
    g = as_graph(graph)
    nodes, edges = neighbourhood(g, targets, hops=hops, max_nodes=max_nodes)
    index = g.index(nodes)
    chunks = [_node_text(texts, node, int(i)) for node, i in zip(nodes, index)]
    return graph_kv(tokenizer, chunks, edges, query, prefix=prefix, names=_node_names(nodes), **layout)


def ego_graph_plan(tokenizer: Any, graph: Any, texts: Texts, center: Hashable, query: Text, *, hops: int = 1,
                   prefix: Text = "", max_nodes: int | None = None, **layout: Any) -> Plan:
    """The ego graph of ``center``: its neighbours (``hops=1``) or its k-hop rings as Graph-KV sources of it."""
    return graph_kv_plan(tokenizer, graph, texts, query, targets=[center], hops=hops, prefix=prefix,
                         max_nodes=max_nodes, **layout)

