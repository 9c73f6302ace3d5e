"""Hop distances from anchors: a bit-parallel breadth-first search (64 sources per pass over the arcs).

``anchor_distances[v, k]`` is the length of a shortest path *from* anchor ``k`` *to* ``v`` (directed graphs follow
arcs; undirected graphs hold both arcs of every edge). networkx's shortest paths are the tests' oracle.
"""
from __future__ import annotations

from typing import Any, Hashable, Iterator, Sequence

import numpy as np

from structlm.graph.input import CSRGraph, as_graph

__all__ = ["UNREACHABLE", "check_radius", "anchor_distances", "distances_from_index", "nearest_anchor_distance",
           "nearest_from_index"]

#: Default distance written for a node that no path from the anchor reaches (and, with ``max_distance``, for a node
#: farther than that). ``-1`` can never be a hop count, so it cannot be confused with one. NT-LLM's released code
#: writes ``9999`` instead: pass ``unreachable=9999`` to match its files, or ``float("inf")`` for float output.
UNREACHABLE = -1


def check_radius(radius: Any) -> int:
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be a non-negative int, got {radius!r}")
    return int(radius)


# --------------------------------------------------------------------------------------------------------------
# Hop distances: bit-parallel BFS, 64 sources per pass
# --------------------------------------------------------------------------------------------------------------


def _pull_or(reverse: CSRGraph, frontier: np.ndarray, nonempty: np.ndarray, starts: np.ndarray,
             gathered: np.ndarray) -> np.ndarray:
    """For every node, OR of the frontier words of its in-neighbours: one gather and one ``reduceat`` over arcs.

    ``gathered`` is a preallocated buffer of one word per arc (allocating 80 MB per level costs page faults).
    """
    out = np.zeros_like(frontier)
    if len(starts):
        np.take(frontier, reverse.indices, out=gathered, mode="clip")  # 'raise' would buffer out
        out[nonempty] = np.bitwise_or.reduceat(gathered, starts)
    return out


def _push_or(graph: CSRGraph, frontier: np.ndarray, active: np.ndarray) -> np.ndarray:
    """The same OR, pushed along the out-arcs of the few active nodes (cheaper while the frontier is small)."""
    out = np.zeros_like(frontier)
    starts = graph.indptr[active]
    counts = graph.indptr[active + 1] - starts
    total = int(counts.sum())
    if total:
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
        np.bitwise_or.at(out, graph.indices[offsets], np.repeat(frontier[active], counts))
    return out


def _pull_rows(reverse: CSRGraph, frontier: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`_pull_or` for a subset of nodes only (those some source has not reached yet)."""
    out = np.zeros_like(frontier)
    starts = reverse.indptr[rows]
    counts = reverse.indptr[rows + 1] - starts
    keep = counts > 0  # rows without in-arcs stay 0 (reduceat cannot express an empty segment)
    rows, starts, counts = rows[keep], starts[keep], counts[keep]
    total = int(counts.sum())
    if total:
        ends = np.cumsum(counts)
        offsets = np.repeat(starts - ends + counts, counts) + np.arange(total)
        out[rows] = np.bitwise_or.reduceat(frontier[reverse.indices[offsets]], ends - counts)
    return out


def _bfs_levels(graph: CSRGraph, sources: np.ndarray,
                max_depth: int | None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(depth, nodes, words)`` per BFS level for up to 64 sources at once.

    Bit ``j`` of ``words[i]`` says node ``nodes[i]`` is first reached from ``sources[j]`` at ``depth``. Each level
    costs one pass over the arcs (pull), over the frontier's out-arcs (push), or over the in-arcs of the nodes some
    source has not reached yet (late levels, when most nodes are done), whichever is smallest.
    """
    if len(sources) > 64:
        raise ValueError("at most 64 sources per bit-parallel BFS")
    n = graph.num_nodes
    reverse = graph.reverse
    nonempty = np.flatnonzero(np.diff(reverse.indptr))
    starts = reverse.indptr[nonempty]
    gathered = None
    frontier = np.zeros(n, dtype=np.uint64)
    np.bitwise_or.at(frontier, sources, np.left_shift(np.uint64(1), np.arange(len(sources), dtype=np.uint64)))
    visited = frontier.copy()
    active = np.flatnonzero(frontier)
    depth = 0
    yield depth, active, frontier[active]
    degree = graph.out_degree
    in_degree = np.diff(reverse.indptr)
    everyone = np.uint64((1 << len(sources)) - 1) if len(sources) < 64 else np.uint64(2**64 - 1)
    while len(active) and (max_depth is None or depth < max_depth):
        depth += 1
        todo = np.flatnonzero(visited != everyone)
        if not len(todo):
            break
        push_cost = int(degree[active].sum())
        todo_cost = int(in_degree[todo].sum())
        if push_cost * 4 < graph.num_arcs and push_cost <= todo_cost:
            reached = _push_or(graph, frontier, active)
        elif todo_cost * 3 < graph.num_arcs:
            reached = _pull_rows(reverse, frontier, todo)
        else:
            if gathered is None:
                gathered = np.empty(graph.num_arcs, dtype=np.uint64)
            reached = _pull_or(reverse, frontier, nonempty, starts, gathered)
        reached &= ~visited
        active = np.flatnonzero(reached)
        if not len(active):
            break
        visited |= reached
        frontier = reached
        yield depth, active, reached[active]


def _bfs_bitplanes(graph: CSRGraph, sources: np.ndarray,
                   max_depth: int | None) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Run :func:`_bfs_levels` and keep the depth of every (node, source) pair as bit planes.

    Bit ``j`` of ``planes[b][v]`` is bit ``b`` of the depth at which ``sources[j]`` reaches ``v``; ``visited[v]``
    says which sources reach ``v`` at all. A BFS to depth D needs only ``log2(D) + 1`` planes of one word per node,
    so unpacking to one byte per pair happens once, at the end, instead of once per level.
    """
    n = graph.num_nodes
    planes: list[np.ndarray] = []
    visited = np.zeros(n, dtype=np.uint64)
    deepest = 0
    for depth, nodes, words in _bfs_levels(graph, sources, max_depth):
        deepest = depth
        visited[nodes] |= words
        for bit in range(depth.bit_length()):
            if bit == len(planes):
                planes.append(np.zeros(n, dtype=np.uint64))
            if (depth >> bit) & 1:
                planes[bit][nodes] |= words
    return planes, visited, deepest


def _unpack(words: np.ndarray, width: int) -> np.ndarray:
    """``[rows]`` uint64 -> ``[rows, width]`` of 0/1 bytes, column j = bit j."""
    return np.unpackbits(words.view(np.uint8).reshape(len(words), 8), axis=1, bitorder="little")[:, :width]


def _output_dtype(unreachable: Any, dtype: Any) -> np.dtype:
    if dtype is not None:
        dt = np.dtype(dtype)
    elif isinstance(unreachable, (float, np.floating)) and not float(unreachable).is_integer():
        dt = np.dtype(np.float32)
    else:
        dt = np.dtype(np.int32)
    if dt.kind not in "iuf":
        raise ValueError(f"dtype must be an integer or float dtype, got {dt}")
    try:
        value = float(unreachable)
    except (TypeError, ValueError):
        raise ValueError(f"unreachable must be a number, got {unreachable!r}") from None
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if not value.is_integer() or not info.min <= value <= info.max:
            raise ValueError(
                f"unreachable={unreachable!r} does not fit dtype {dt}; pick a float dtype or another value")
    return dt


def anchor_distances(
    graph: Any,
    anchors: Sequence[Hashable] | np.ndarray,
    max_distance: int | None = None,
    unreachable: float = UNREACHABLE,
    dtype: Any = None,
    *,
    num_nodes: int | None = None,
) -> np.ndarray:
    """Hop distances ``[num_nodes, num_anchors]``: entry ``[v, k]`` is the length of a shortest path from
    ``anchors[k]`` to node ``v`` (rows in the graph's node order, columns in the order of ``anchors``).

    ``unreachable`` (default :data:`UNREACHABLE` = -1) marks nodes no path reaches. ``max_distance`` stops the search
    at that depth, which is cheaper; nodes farther away are then marked ``unreachable`` too. The output is int32
    unless ``dtype`` says otherwise (float32 if the sentinel is ``inf`` or ``nan``); a million nodes and 256 anchors
    take 1 GB in int32, so pass ``dtype=np.int16`` when memory matters. ``num_nodes`` (edge lists, arrays,
    ``edge_index``) counts isolated nodes past the largest id, as PyG's utilities take it.
    """
    g = as_graph(graph, num_nodes=num_nodes)
    return distances_from_index(g, g.index(anchors), max_distance, unreachable, dtype)


def distances_from_index(g: CSRGraph, index: np.ndarray, max_distance: int | None = None,
                         unreachable: float = UNREACHABLE, dtype: Any = None) -> np.ndarray:
    """:func:`anchor_distances` for anchors given as internal node indices (no id lookup)."""
    index = np.asarray(index, dtype=np.int64)
    if max_distance is not None:
        max_distance = check_radius(max_distance)
    dt = _output_dtype(unreachable, dtype)
    n, k = g.num_nodes, len(index)
    top = n - 1 if max_distance is None else min(max_distance, max(n - 1, 0))
    if dt.kind in "iu" and top > np.iinfo(dt).max:
        raise ValueError(f"dtype {dt} cannot hold distances up to {top}; use a wider dtype or max_distance")
    out = np.empty((n, k), dtype=dt)
    deepest = -1
    rows_per_chunk = 1 << 14  # keeps the unpacked temporaries in cache
    for base in range(0, k, 64):
        sources = index[base:base + 64]
        width = len(sources)
        planes, visited, depth = _bfs_bitplanes(g, sources, max_distance)
        deepest = max(deepest, depth)
        # Unreached pairs get the all-ones code 2^P - 1 (> every depth); a lookup table turns codes into output.
        while len(planes) < (depth + 1).bit_length():
            planes.append(np.zeros(n, dtype=np.uint64))
        missing = ~visited
        level_dtype = np.uint8 if len(planes) <= 8 else np.uint16 if len(planes) <= 16 else np.uint32
        table = np.arange(1 << len(planes), dtype=dt)
        table[-1] = dt.type(unreachable)
        for lo in range(0, n, rows_per_chunk):
            hi = min(n, lo + rows_per_chunk)
            code = np.zeros((hi - lo, width), dtype=level_dtype)
            for bit, plane in enumerate(planes):
                code |= _unpack(plane[lo:hi] | missing[lo:hi], width).astype(level_dtype) << level_dtype(bit)
            out[lo:hi, base:base + width] = table[code]
    # BFS depths are contiguous, so the sentinel is ambiguous exactly when it is a depth some search reached.
    if float(unreachable).is_integer() and 0 <= float(unreachable) <= deepest:
        raise ValueError(f"unreachable={unreachable!r} equals a real distance in this graph; pick another value")
    return out


def nearest_anchor_distance(graph: Any, anchors: Sequence[Hashable] | np.ndarray,
                            max_distance: int | None = None, unreachable: int = UNREACHABLE, *,
                            num_nodes: int | None = None) -> np.ndarray:
    """Hops from the nearest anchor to every node (one multi-source BFS): what coverage is measured with."""
    g = as_graph(graph, num_nodes=num_nodes)
    return nearest_from_index(g, g.index(anchors), max_distance, unreachable)


def nearest_from_index(g: CSRGraph, index: np.ndarray, max_distance: int | None = None,
                       unreachable: int = UNREACHABLE) -> np.ndarray:
    """:func:`nearest_anchor_distance` for anchors given as internal node indices (no id lookup)."""
    index = np.asarray(index, dtype=np.int64)
    if max_distance is not None:
        max_distance = check_radius(max_distance)
    n = g.num_nodes
    dist = np.full(n, unreachable, dtype=np.int64)
    if not len(index) or not n:
        return dist
    reverse = g.reverse
    nonempty = np.flatnonzero(np.diff(reverse.indptr))
    frontier = np.zeros(n, dtype=bool)
    frontier[index] = True
    visited = frontier.copy()
    dist[index] = 0
    depth = 0
    starts = reverse.indptr[nonempty]
    while frontier.any() and (max_distance is None or depth < max_distance):
        depth += 1
        reached = np.zeros(n, dtype=bool)
        reached[nonempty] = np.logical_or.reduceat(frontier[reverse.indices], starts)
        reached &= ~visited
        if not reached.any():
            break
        dist[reached] = depth
        visited |= reached
        frontier = reached
    return dist


