"""Graphs in, NT-LLM anchors and hop distances out.

NT-LLM (arXiv 2410.10743) describes every node by its hop distances to a few *anchor* nodes, chosen greedily so
that radius-``c`` balls around them cover most of the graph. This module gives that front end:

* :func:`as_graph` turns networkx graphs, PyG ``Data`` / ``edge_index``, scipy sparse matrices and edge lists into
  one CSR form (:class:`CSRGraph`), keeping the caller's node ids so answers come back in them;
* :func:`select_anchors` is exact greedy maximum coverage of radius-``c`` balls (lazy max-heap, deterministic
  tie-break), vectorised so that a million-node graph takes seconds, not hours;
* :func:`anchor_distances` is a bit-parallel breadth-first search (64 anchors per pass over the arcs).

Directed graphs: the ball of ``v`` holds the nodes reachable from ``v`` in at most ``radius`` hops along arcs, and
``anchor_distances[v, k]`` is the length of the shortest path *from* anchor ``k`` *to* ``v``. Undirected graphs are
stored with both arcs of every edge, so both readings agree.

Graph input lives in :mod:`structlm.graph_input` (re-exported here), the PyG transform in :mod:`structlm.graph_pyg`
(re-exported lazily, so that importing this module does not import torch_geometric), node tokens in
:mod:`structlm.graph_tokens` and plans in :mod:`structlm.graph_plans`.
"""
from __future__ import annotations

import math
from typing import Any, Hashable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from structlm.graph_input import CSRGraph, GraphInputError, as_graph

__all__ = [
    "CSRGraph",
    "GraphInputError",
    "UNREACHABLE",
    "as_graph",
    "select_anchors",
    "anchor_distances",
    "anchor_coverage",
    "nearest_anchor_distance",
    "AddAnchorDistances",
]

#: Default distance written for a node that no path from the anchor reaches (and, with ``max_distance``, for a node
#: farther than that). ``-1`` can never be a hop count, so it cannot be confused with one. NT-LLM's released code
#: writes ``9999`` instead: pass ``unreachable=9999`` to match its files, or ``float("inf")`` for float output.
UNREACHABLE = -1


# --------------------------------------------------------------------------------------------------------------
# Anchor selection: greedy maximum coverage of radius-c balls
# --------------------------------------------------------------------------------------------------------------


def _check_radius(radius: Any) -> int:
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be a non-negative int, got {radius!r}")
    return int(radius)


def _ball_upper_bounds(graph: CSRGraph, radius: int) -> np.ndarray:
    """Cheap upper bounds on ``|B_radius(v)|`` for every ``v`` (exact for radius <= 1, and on trees).

    Nodes at distance ``k >= 2`` are reached by a shortest path whose last step leaves a node at distance ``k-1``;
    in a symmetric graph that node has an arc back towards ``v`` which the step cannot use, so its contribution is
    at most ``deg - 1``. Hence ``|B_c(v)| <= 1 + deg(v) + sum_{k=2..c} (A^{k-1} d')(v)`` with ``d' = deg - 1``
    (``d' = out-degree`` for directed graphs): ``c - 1`` sparse matrix-vector products, no ball is built.
    """
    n = graph.num_nodes
    degree = graph.out_degree.astype(np.float64)
    bound = 1.0 + degree if radius >= 1 else np.ones(n)
    if radius >= 2:
        step = np.maximum(degree - 1.0, 0.0) if graph.symmetric else degree
        matrix = sp.csr_matrix((np.ones(graph.num_arcs), graph.indices, graph.indptr), shape=(n, n))
        for _ in range(radius - 1):
            step = matrix @ step
            bound += step
            if np.all(bound >= n):
                break
    return np.minimum(bound, n).astype(np.int64)


class _UncoveredBalls:
    """Computes ``|B_c(v) ∩ U|`` for batches of nodes, ``U`` being the uncovered nodes.

    With ``M = A + I``, ``B_c(v) ∩ U`` is the pattern of row ``v`` of ``M^(c-1) M[:, U]``: every step but the last
    must walk through covered nodes too, the last may only land on uncovered ones. Keeping a copy of ``M`` with the
    covered columns dropped makes the last (largest) product shrink as coverage grows. The copy is refreshed when
    ``U`` has lost a quarter of its nodes since; in between its extra columns are weeded out by a dot with the exact
    uncovered indicator, so gains are always exact.
    """

    def __init__(self, graph: CSRGraph, radius: int) -> None:
        n = graph.num_nodes
        self.radius = radius
        self.full = (graph.adjacency + sp.identity(n, dtype=bool, format="csr")).tocsr()
        self.uncovered = np.ones(n, dtype=np.int32)
        self.count = n  # uncovered nodes
        self._refresh()

    def _refresh(self) -> None:
        full = self.full
        if self.count == full.shape[0]:
            self.last = full
        else:
            keep = self.uncovered.astype(bool)[full.indices]
            kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
            self.last = sp.csr_matrix((np.ones(int(kept_before[-1]), dtype=bool), full.indices[keep],
                                       kept_before[full.indptr]), shape=full.shape)
        self.refreshed_at = self.count

    def balls(self, nodes: np.ndarray) -> sp.csr_matrix:
        """Rows ``B_c(v) ∩ U'`` with ``U' ⊇ U`` the uncovered set at the last refresh (exact after a dot with U)."""
        rows = len(nodes)
        balls = sp.csr_matrix((np.ones(rows, dtype=bool), (np.arange(rows), nodes)), shape=(rows, self.full.shape[0]))
        if self.radius == 0:
            return balls
        for _ in range(self.radius - 1):
            balls = balls @ self.full
        return balls @ self.last

    def gains(self, nodes: np.ndarray) -> np.ndarray:
        return self.balls(nodes).dot(self.uncovered)

    def cover(self, node: int) -> int:
        """Mark the ball of ``node`` covered; returns how many nodes it newly covered."""
        ball = self.balls(np.asarray([node])).indices
        newly = ball[self.uncovered[ball] == 1]
        self.uncovered[newly] = 0
        self.count -= len(newly)
        if self.count < 0.75 * self.refreshed_at:
            self._refresh()
        return len(newly)


#: Largest number of ball entries (estimated from the upper bounds) evaluated in one batch: about 40 MB at most.
_BATCH_VOLUME = 1 << 23
#: Candidates kept in the working pool of the lazy greedy; the rest wait in one array, keyed but untouched.
_POOL = 1 << 14
_DROPPED = np.iinfo(np.int64).max


def _best_keys(key: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Indices of the ``size`` smallest keys and the largest of them (every other key is larger)."""
    if size >= len(key):
        return np.arange(len(key), dtype=np.int64), _DROPPED
    pool = np.argpartition(key, size - 1)[:size]
    return pool.astype(np.int64), int(key[pool].max())


def select_anchors(
    graph: Any,
    radius: int = 2,
    coverage: float = 0.95,
    max_anchors: int | None = None,
    seed: int | None = None,
) -> np.ndarray | list:
    """Greedy maximum coverage: anchors whose radius-``radius`` balls cover at least ``coverage`` of the nodes.

    Each step takes the node whose ball holds the most still-uncovered nodes (NT-LLM's rule), stopping once
    ``ceil(coverage * n)`` nodes are covered or ``max_anchors`` are chosen. ``coverage=1.0`` covers every node (the
    released NT-LLM code pops an empty heap there). Ties go to the smallest node index, or, with ``seed``, to a
    seeded random order (different seeds pick among equally good anchors; the same seed gives the same answer).

    Why it is fast: gains only shrink as nodes get covered (submodularity), so a lazy max-priority queue keyed by
    stale gains is exact (CELF): a node whose gain was recomputed in the current step and still tops the queue is
    the true argmax. The queue starts from cheap upper bounds (:func:`_ball_upper_bounds`) instead of every ball;
    it is a numpy pool of the best 16k keys (refilled with ``argpartition``) rather than a binary heap, which would
    cost a Python operation per node; recomputations are batched into sparse matrix products; nothing loops over
    nodes or edges in Python.

    Unlike the released C++ code, a covered node stays a candidate (its ball may still reach uncovered nodes), so
    this is the plain greedy of set cover. Returns anchors in selection order, as the caller's node ids.
    """
    g = as_graph(graph)
    radius = _check_radius(radius)
    if isinstance(coverage, bool) or not isinstance(coverage, (int, float, np.floating)) or not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage!r}")
    if max_anchors is not None and (isinstance(max_anchors, bool) or not isinstance(max_anchors, (int, np.integer))
                                    or max_anchors < 1):
        raise ValueError(f"max_anchors must be a positive int or None, got {max_anchors!r}")
    n = g.num_nodes
    if n == 0:
        return g.ids(np.empty(0, dtype=np.int64))
    target = n if coverage >= 1 else min(n, max(1, math.ceil(coverage * n - 1e-9)))
    budget = n if max_anchors is None else int(max_anchors)

    priority = np.arange(n, dtype=np.int64) if seed is None else np.random.default_rng(seed).permutation(n)
    bounds = _ball_upper_bounds(g, radius)
    # One integer key per node encodes (-gain, priority): the smallest key is the best candidate, keys are unique,
    # and a key only ever grows (gains shrink). Zero-gain nodes can never gain again and are parked at DROPPED.
    key = -bounds * n + priority
    evaluated_in = np.full(n, -1, dtype=np.int64)  # step in which the key became an exact gain
    state = _UncoveredBalls(g, radius)
    anchors: list[int] = []
    covered_count, step, batch = 0, 0, 16
    # The pool holds the best keys; everything outside is > threshold, so while the pool's minimum is below the
    # threshold it is the global minimum. This keeps each step O(pool) instead of O(n) and avoids per-node Python.
    pool = np.empty(0, dtype=np.int64)
    pool_keys = np.empty(0, dtype=np.int64)
    threshold = _DROPPED

    while covered_count < target and len(anchors) < budget:
        if not len(pool) or pool_keys.min() > threshold:
            pool, threshold = _best_keys(key, _POOL)
            pool_keys = key[pool]
        best = int(np.argmin(pool_keys))
        node = int(pool[best])
        if pool_keys[best] == _DROPPED:  # cannot happen: an uncovered node's ball holds itself
            raise RuntimeError("anchor selection ran out of candidates before reaching the coverage target")
        if evaluated_in[node] == step:  # an exact gain that beats every upper bound: the greedy choice
            covered_count += state.cover(node)
            anchors.append(node)
            key[node] = pool_keys[best] = _DROPPED  # its ball is covered now: gain 0 for good
            step += 1
            batch = max(16, batch // 4)
            continue
        # Recompute, in one batch, the best stale candidates that could still beat the best exact gain.
        fresh = evaluated_in[pool] == step
        best_fresh = pool_keys[fresh].min() if fresh.any() else _DROPPED
        stale = np.flatnonzero(~fresh & (pool_keys < best_fresh))
        if len(stale) > batch:
            stale = stale[np.argpartition(pool_keys[stale], batch - 1)[:batch]]
        stale = stale[np.argsort(pool_keys[stale])]
        volume = np.cumsum(bounds[pool[stale]])
        stale = stale[: max(1, int(np.searchsorted(volume, _BATCH_VOLUME)))]
        nodes = pool[stale]
        gains = state.gains(nodes).astype(np.int64)
        new_keys = np.where(gains > 0, -gains * n + priority[nodes], _DROPPED)
        key[nodes] = pool_keys[stale] = new_keys
        evaluated_in[nodes] = step
        batch = min(batch * 2, 8192)
    return g.ids(np.asarray(anchors, dtype=np.int64))


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
) -> np.ndarray:
    """Hop distances ``[num_nodes, num_anchors]``: entry ``[v, k]`` is the length of a shortest path from
    ``anchors[k]`` to node ``v`` (rows in the graph's node order, columns in the order of ``anchors``).

    ``unreachable`` (default :data:`UNREACHABLE` = -1) marks nodes no path reaches. ``max_distance`` stops the search
    at that depth, which is cheaper; nodes farther away are then marked ``unreachable`` too. The output is int32
    unless ``dtype`` says otherwise (float32 if the sentinel is ``inf`` or ``nan``); a million nodes and 256 anchors
    take 1 GB in int32, so pass ``dtype=np.int16`` when memory matters.
    """
    g = as_graph(graph)
    return distances_from_index(g, g.index(anchors), max_distance, unreachable, dtype)


def distances_from_index(g: CSRGraph, index: np.ndarray, max_distance: int | None = None,
                         unreachable: float = UNREACHABLE, dtype: Any = None) -> np.ndarray:
    """:func:`anchor_distances` for anchors given as internal node indices (no id lookup)."""
    index = np.asarray(index, dtype=np.int64)
    if max_distance is not None:
        max_distance = _check_radius(max_distance)
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
                            max_distance: int | None = None, unreachable: int = UNREACHABLE) -> np.ndarray:
    """Hops from the nearest anchor to every node (one multi-source BFS): what coverage is measured with."""
    g = as_graph(graph)
    return nearest_from_index(g, g.index(anchors), max_distance, unreachable)


def nearest_from_index(g: CSRGraph, index: np.ndarray, max_distance: int | None = None,
                       unreachable: int = UNREACHABLE) -> np.ndarray:
    """:func:`nearest_anchor_distance` for anchors given as internal node indices (no id lookup)."""
    index = np.asarray(index, dtype=np.int64)
    if max_distance is not None:
        max_distance = _check_radius(max_distance)
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


def anchor_coverage(graph: Any, anchors: Sequence[Hashable] | np.ndarray, radius: int = 2) -> float:
    """Fraction of nodes within ``radius`` hops of some anchor (the quantity :func:`select_anchors` drives up)."""
    g = as_graph(graph)
    if g.num_nodes == 0:
        return 1.0
    dist = nearest_anchor_distance(g, anchors, max_distance=_check_radius(radius))
    return float(np.count_nonzero(dist >= 0)) / g.num_nodes


def __getattr__(name: str) -> Any:
    """Import the PyG transform on first use, so ``import structlm.graph`` does not pay for torch_geometric."""
    if name == "AddAnchorDistances":
        from structlm.graph_pyg import AddAnchorDistances

        return AddAnchorDistances
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
