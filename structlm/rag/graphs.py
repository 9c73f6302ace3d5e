"""Graph-KV: chunks with ``(source, target)`` edges; a target sees only its sources' keys and values.

Chunks without sources share ``[P, P+Lᵢ)``; a target starts right after its longest source; a chunk whose
sources are themselves targets lands in a later round (:func:`~structlm.layouts.rounds`). The query sees
everything and sits after all. Variants for retrieved chunks (:func:`graph_kv_rag`) and citation ego-graphs
(:func:`ego_graphs`, :func:`citation`).
"""
from __future__ import annotations

from typing import Iterable, Sequence

from structlm.errors import CycleError
from structlm.layouts import chain, rounds
from structlm.plan import Plan
from structlm.rag.prompt import as_list, prompt_parts
from structlm.schedule import dependency_levels
from structlm.text import Text, TemplateLike

__all__ = ["graph_kv_rounds", "graph_kv", "graph_kv_rag", "ego_graphs", "citation"]


def graph_kv_rounds(num_chunks: int, edges: Iterable[tuple[int, int]]) -> list[int]:
    """Round of each chunk: 0 without sources, else 1 + the largest round among its sources.

    Why: Graph-KV re-encodes a target on top of its sources' keys, so a target whose sources are targets of an
    earlier round must wait for them (multi-hop chains). Raises ``PlanError`` on cycles and bad edges.
    """
    sources: list[set[int]] = [set() for _ in range(num_chunks)]
    for edge in edges:
        try:
            source, target = edge
        except (TypeError, ValueError):
            raise ValueError(f"an edge is a (source, target) pair of chunk indices, got {edge!r}") from None
        for end in (source, target):
            if isinstance(end, bool) or not isinstance(end, int) or not 0 <= end < num_chunks:
                raise ValueError(f"edge {edge!r}: chunk indices must be integers in [0, {num_chunks})")
        if source == target:
            raise ValueError(f"edge {edge!r} is a self-loop: a chunk always sees itself; drop the edge")
        sources[target].add(source)
    deps = {i: sorted(sources[i]) for i in range(num_chunks)}
    try:
        level = dependency_levels(range(num_chunks), deps)
    except CycleError as error:
        raise CycleError(
            "Graph-KV edges form a cycle (" + " <- ".join(map(str, error.cycle)) + "): a target is encoded on top "
            "of its sources, so the graph must be acyclic. For 'every chunk both source and target' use "
            "graph_kv_rag(..., top_m='full'), which encodes a second copy of each chunk as the target",
            error.cycle,
        ) from None
    return [level[i] for i in range(num_chunks)]


def graph_kv(
    tokenizer,
    chunks: Sequence[Text],
    edges: Iterable[tuple[int, int]],
    query: Text,
    prefix: Text = "",
    names: Sequence[str] | None = None,
    spacing: str = "tight",
    template: TemplateLike | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """Graph-KV layout: ``(source, target)`` edges let a target see its sources; positions by rounds.

    * round 0 (chunks without sources) share ``[P, P + Lᵢ)`` (role ``source``) and see the prefix;
    * a target (role ``target``) sees the prefix and its sources — their single copy, which for a source that is
      itself a target is its updated, round-t encoding (multi-hop chains);
    * ``spacing="tight"`` (default): a target starts right after its longest source,
      ``start(t) = max over sources s of (start(s) + L_s)`` — for one round ``P + max L_source``, the official
      citation-graph rule; ``spacing="rounds"``: the paper's formula, round t at ``P + t·L`` with L the longest
      chunk. Both agree when chunks have equal length (round t at ``[P + tL, P + (t+1)L)``).
    * the query (role ``query``) sees every segment and starts after the largest position used.

    Segments are ordered by round, then by chunk index (a target always comes after what it sees).
    Names default to ``chunk{i}``.
    """
    if spacing not in ("tight", "rounds"):
        raise ValueError(f"spacing must be 'tight' or 'rounds', got {spacing!r}")
    prompt = prompt_parts(tokenizer, chunks, query, prefix, template, add_bos, names, default="chunk")
    edges = list(edges)
    round_of = graph_kv_rounds(len(prompt.items), edges)
    sources: list[list[int]] = [[] for _ in prompt.items]
    for source, target in edges:
        if source not in sources[target]:
            sources[target].append(source)
    plan = Plan()
    start = chain(plan, [prompt.prefix_part()] if prompt.base else [])
    end = rounds(plan, prompt.items, sources, round_of, base=start, sees=prompt.base, spacing=spacing)
    chain(plan, [prompt.query_part()], start=end, sees=plan.names)
    return plan


def graph_kv_rag(
    tokenizer,
    chunks: Sequence[Text],
    query: Text,
    top_m: int | Sequence[int] | str = 1,
    prefix: Text = "",
    scores: Sequence[float] | None = None,
    spacing: str = "tight",
    template: TemplateLike | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """Graph-KV's RAG variants over retrieved chunks (no native graph).

    Ranking: by ``scores`` (higher = better) when given, else the list order is taken as ascending relevance,
    the paper's convention (the best chunk last). Variants:

    * ``top_m=m`` (1 or 3 in the paper): the m best chunks are sources; every other chunk is a target of all m;
    * ``top_m=[m₁, m₂, …]``: a multi-hop chain (paper A.1.2), e.g. ``[1, 3]`` = Top-1 → Top-2..4 → rest, each
      group the targets of the previous group and the sources of the next;
    * ``top_m="full"``: every chunk is both — round-0 copies ``chunk{i}`` (sources) and round-1 copies
      ``chunk{i}.target`` that see every round-0 copy (their own included, as in the official code).
    """
    chunks = as_list(chunks, "chunks")
    n = len(chunks)
    if n == 0:
        raise ValueError("graph_kv_rag needs at least one chunk")
    if scores is not None:
        scores = list(scores)
        if len(scores) != n:
            raise ValueError(f"{len(scores)} scores for {n} chunks")
        ranking = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    else:
        ranking = list(reversed(range(n)))
    names = [f"chunk{i}" for i in range(n)]
    if isinstance(top_m, str):
        if top_m != "full":
            raise ValueError(f"top_m must be an int, a list of group sizes or 'full', got {top_m!r}")
        edges = [(i, n + j) for i in range(n) for j in range(n)]
        return graph_kv(
            tokenizer, list(chunks) + list(chunks), edges, query, prefix=prefix,
            names=names + [f"{name}.target" for name in names], spacing=spacing, template=template, add_bos=add_bos,
        )
    groups = [top_m] if isinstance(top_m, int) and not isinstance(top_m, bool) else list(top_m)
    if not groups or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in groups):
        raise ValueError(f"top_m group sizes must be positive integers, got {top_m!r}")
    if sum(groups) >= n:
        raise ValueError(f"top_m={top_m!r} uses {sum(groups)} chunks as sources but there are only {n}; "
                         "at least one chunk must remain a target")
    layers: list[list[int]] = []
    at = 0
    for g in groups:
        layers.append(ranking[at:at + g])
        at += g
    layers.append(ranking[at:])
    edges = [(s, t) for upper, lower in zip(layers, layers[1:]) for s in upper for t in lower]
    return graph_kv(tokenizer, chunks, edges, query, prefix=prefix, names=names, spacing=spacing,
                    template=template, add_bos=add_bos)


def ego_graphs(
    tokenizer,
    graphs: Sequence[tuple[Text, Sequence[Text]]],
    query: Text,
    prefix: Text = "",
    spacing: str = "tight",
    template: TemplateLike | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """Citation ego-graphs: in each ``(centre, references)`` pair the references are sources of the centre.

    Several ego-graphs (the relevant one plus distractors) share the same position ranges, so their order in
    the list does not change attention. Names: ``g{k}.ref{j}`` and ``g{k}.centre``.
    """
    graphs = as_list(graphs, "graphs")
    if not graphs:
        raise ValueError("ego_graphs needs at least one (centre, references) pair")
    chunks: list[Text] = []
    names: list[str] = []
    edges: list[tuple[int, int]] = []
    for k, pair in enumerate(graphs):
        try:
            centre, references = pair
        except (TypeError, ValueError):
            raise ValueError(f"graph {k} must be a (centre, references) pair") from None
        references = as_list(references, f"references of graph {k}")
        first = len(chunks)
        for j, ref in enumerate(references):
            chunks.append(ref)
            names.append(f"g{k}.ref{j}")
        chunks.append(centre)
        names.append(f"g{k}.centre")
        edges += [(first + j, len(chunks) - 1) for j in range(len(references))]
    return graph_kv(tokenizer, chunks, edges, query, prefix=prefix, names=names, spacing=spacing,
                    template=template, add_bos=add_bos)


def citation(
    tokenizer,
    centre: Text,
    references: Sequence[Text],
    query: Text,
    prefix: Text = "",
    spacing: str = "tight",
    template: TemplateLike | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """One citation ego-graph: references → centre paper; the query sees all (see :func:`ego_graphs`)."""
    return ego_graphs(tokenizer, [(centre, references)], query, prefix=prefix, spacing=spacing,
                      template=template, add_bos=add_bos)

