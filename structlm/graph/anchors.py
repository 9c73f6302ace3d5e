"""NT-LLM anchors: greedy maximum coverage of radius-``c`` balls.

NT-LLM (arXiv 2410.10743) describes every node by its hop distances to a few *anchor* nodes, chosen greedily so
that radius-``c`` balls around them cover most of the graph. :func:`select_anchors` is exact greedy maximum
coverage (lazy max-heap, deterministic tie-break), vectorised so that a million-node graph takes seconds, not hours;
:func:`anchor_coverage` measures what it achieved. Distances are in :mod:`structlm.graph.distances`.

Directed graphs: the ball of ``v`` holds the nodes reachable from ``v`` in at most ``radius`` hops along arcs.
Undirected graphs are stored with both arcs of every edge, so both readings agree.
"""
from __future__ import annotations

import math
from typing import Any, Hashable, Sequence

import numpy as np
import scipy.sparse as sp

from structlm.graph.distances import check_radius, nearest_anchor_distance
from structlm.graph.input import CSRGraph, as_graph

__all__ = ["select_anchors", "anchor_coverage"]

# --------------------------------------------------------------------------------------------------------------
# Anchor selection: greedy maximum coverage of radius-c balls
# --------------------------------------------------------------------------------------------------------------


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
    *,
    num_nodes: int | None = None,
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
    ``num_nodes`` (edge lists, arrays, ``edge_index``) counts isolated nodes past the largest id, as PyG's
    utilities take it.
    """
    g = as_graph(graph, num_nodes=num_nodes)
    radius = check_radius(radius)
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


def anchor_coverage(graph: Any, anchors: Sequence[Hashable] | np.ndarray, radius: int = 2, *,
                    num_nodes: int | None = None) -> float:
    """Fraction of nodes within ``radius`` hops of some anchor (the quantity :func:`select_anchors` drives up)."""
    g = as_graph(graph, num_nodes=num_nodes)
    if g.num_nodes == 0:
        return 1.0
    dist = nearest_anchor_distance(g, anchors, max_distance=check_radius(radius))
    return float(np.count_nonzero(dist >= 0)) / g.num_nodes
