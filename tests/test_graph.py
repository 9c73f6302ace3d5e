"""Graph input, greedy anchor selection and anchor distances, checked against networkx."""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from structlm.graph import (
    UNREACHABLE,
    CSRGraph,
    GraphInputError,
    anchor_coverage,
    anchor_distances,
    as_graph,
    nearest_anchor_distance,
    select_anchors,
)
from structlm.graph.anchors import _ball_upper_bounds


@st.composite
def random_graphs(draw, max_nodes: int = 24):
    """Small graphs of several kinds: directed or not, with isolated nodes, several components, dense or sparse."""
    n = draw(st.integers(0, max_nodes))
    directed = draw(st.booleans())
    graph = nx.DiGraph() if directed else nx.Graph()
    graph.add_nodes_from(range(n))
    if n >= 2:
        kind = draw(st.sampled_from(["random", "path", "components", "star"]))
        if kind == "random":
            pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
            graph.add_edges_from((u, v) for u, v in pairs if u != v)
        elif kind == "path":
            order = draw(st.permutations(range(n)))
            graph.add_edges_from(zip(order, order[1:]))
        elif kind == "components":
            cut = draw(st.integers(1, n - 1))
            graph.add_edges_from((i, i + 1) for i in range(cut - 1))
            graph.add_edges_from((i, i + 1) for i in range(cut, n - 2))  # leaves node n-1 isolated
        else:
            graph.add_edges_from((0, i) for i in range(1, n))
    return graph


def nx_distances(graph: nx.Graph, anchors, cutoff=None, unreachable=UNREACHABLE) -> np.ndarray:
    row = {node: i for i, node in enumerate(graph.nodes())}
    out = np.full((len(row), len(anchors)), unreachable, dtype=np.int64)
    for k, anchor in enumerate(anchors):
        for node, dist in nx.single_source_shortest_path_length(graph, anchor, cutoff=cutoff).items():
            out[row[node], k] = dist
    return out


def greedy_reference(graph: nx.Graph, radius: int, coverage: float, priority=None) -> list:
    """Plain greedy set cover with networkx: recompute every gain each step, take the best, ties by priority."""
    nodes = list(graph.nodes())
    priority = list(range(len(nodes))) if priority is None else list(priority)
    balls = {v: set(nx.single_source_shortest_path_length(graph, v, cutoff=radius)) for v in nodes}
    target = len(nodes) if coverage >= 1 else min(len(nodes), max(1, math.ceil(coverage * len(nodes) - 1e-9)))
    uncovered, anchors = set(nodes), []
    while len(nodes) - len(uncovered) < target:
        best = min(range(len(nodes)), key=lambda i: (-len(balls[nodes[i]] & uncovered), priority[i]))
        anchors.append(nodes[best])
        uncovered -= balls[nodes[best]]
    return anchors


# ---------------------------------------------------------------------------------------------- distances


@settings(max_examples=60, deadline=None)
@given(graph=random_graphs(), data=st.data())
def test_distances_equal_networkx(graph, data):
    n = graph.number_of_nodes()
    anchors = data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=6)) if n else []
    cutoff = data.draw(st.one_of(st.none(), st.integers(0, 4)))
    got = anchor_distances(graph, anchors, max_distance=cutoff)
    assert got.shape == (n, len(anchors)) and got.dtype == np.int32
    np.testing.assert_array_equal(got, nx_distances(graph, anchors, cutoff))


def test_distances_more_than_64_anchors_and_custom_sentinel():
    graph = nx.gnp_random_graph(150, 0.02, seed=3, directed=True)
    anchors = list(range(0, 150, 2))  # 75 anchors: two bit-parallel passes
    got = anchor_distances(graph, anchors, unreachable=9999)
    np.testing.assert_array_equal(got, nx_distances(graph, anchors, unreachable=9999))
    floats = anchor_distances(graph, anchors, unreachable=float("inf"))
    assert floats.dtype == np.float32 and np.isinf(floats).any()
    np.testing.assert_array_equal(np.where(np.isinf(floats), 9999, floats), got)


def test_distances_on_a_larger_graph_with_isolated_nodes():
    # late BFS levels pull only the unfinished nodes; isolated nodes are unfinished forever and have no in-arcs
    graph = nx.barabasi_albert_graph(1500, 2, seed=4)
    graph.add_nodes_from(range(1500, 1510))
    anchors = list(range(0, 1500, 23))  # 66 anchors: a full 64-source pass and a short one
    np.testing.assert_array_equal(anchor_distances(graph, anchors), nx_distances(graph, anchors))


def test_long_paths_and_small_dtypes():
    path = nx.path_graph(700)
    got = anchor_distances(path, [0, 699])
    assert got[699, 0] == 699 and got[0, 1] == 699
    assert anchor_distances(path, [0], dtype=np.int16)[699, 0] == 699
    with pytest.raises(ValueError, match="cannot hold"):
        anchor_distances(path, [0], dtype=np.int8)
    assert anchor_distances(path, [0], max_distance=100, dtype=np.int8)[699, 0] == UNREACHABLE


def test_sentinel_that_is_a_real_distance_is_refused():
    with pytest.raises(ValueError, match="equals a real distance"):
        anchor_distances(nx.path_graph(5), [0], unreachable=3)
    with pytest.raises(ValueError, match="does not fit"):
        anchor_distances(nx.path_graph(5), [0], unreachable=1.5, dtype=np.int32)
    with pytest.raises(ValueError, match="must be a number"):
        anchor_distances(nx.path_graph(5), [0], unreachable="far")


@settings(max_examples=40, deadline=None)
@given(graph=random_graphs(), radius=st.integers(0, 3))
def test_nearest_anchor_distance_is_the_row_minimum(graph, radius):
    n = graph.number_of_nodes()
    anchors = list(range(0, n, 3))
    full = nx_distances(graph, anchors, unreachable=10**6)
    expected = full.min(axis=1) if anchors else np.full(n, 10**6)
    expected = np.where(expected >= 10**6, UNREACHABLE, expected)
    np.testing.assert_array_equal(nearest_anchor_distance(graph, anchors), expected)
    capped = np.where((expected >= 0) & (expected <= radius), expected, UNREACHABLE)
    np.testing.assert_array_equal(nearest_anchor_distance(graph, anchors, max_distance=radius), capped)


# ---------------------------------------------------------------------------------------------- anchors


@settings(max_examples=60, deadline=None)
@given(graph=random_graphs(), radius=st.integers(0, 3), seed=st.one_of(st.none(), st.integers(0, 5)))
def test_full_coverage_matches_plain_greedy(graph, radius, seed):
    anchors = select_anchors(graph, radius=radius, coverage=1.0, seed=seed)
    n = graph.number_of_nodes()
    if n:
        within = nx_distances(graph, anchors, cutoff=radius)
        assert (within >= 0).any(axis=1).all(), "a node lies outside every anchor's ball"
    priority = None if seed is None else np.random.default_rng(seed).permutation(n)
    reference = greedy_reference(graph, radius, 1.0, priority)
    assert len(anchors) <= len(reference)
    assert list(anchors) == reference  # the same greedy, the same tie-break


@settings(max_examples=40, deadline=None)
@given(graph=random_graphs(30), coverage=st.floats(0.05, 1.0), radius=st.integers(1, 2))
def test_partial_coverage_stops_at_the_target(graph, coverage, radius):
    n = graph.number_of_nodes()
    anchors = select_anchors(graph, radius=radius, coverage=coverage)
    assert list(anchors) == greedy_reference(graph, radius, coverage)
    if n:
        target = max(1, math.ceil(coverage * n - 1e-9))
        assert anchor_coverage(graph, anchors, radius) * n >= target - 1e-9
        assert anchor_coverage(graph, list(anchors)[:-1], radius) * n < target  # not one anchor too many


@settings(max_examples=30, deadline=None)
@given(graph=random_graphs())
def test_upper_bounds_bound_the_balls(graph):
    g = as_graph(graph)
    for radius in range(4):
        bounds = _ball_upper_bounds(g, radius)
        exact = [len(nx.single_source_shortest_path_length(graph, v, cutoff=radius)) for v in graph.nodes()]
        assert (bounds >= np.asarray(exact, dtype=np.int64)).all()
        if radius <= 1:
            np.testing.assert_array_equal(bounds, exact)


def test_budget_determinism_and_seeds():
    graph = nx.barabasi_albert_graph(400, 2, seed=1)
    assert len(select_anchors(graph, radius=1, coverage=1.0, max_anchors=5)) == 5
    first = select_anchors(graph, radius=1, coverage=0.9, seed=7)
    assert list(first) == list(select_anchors(graph, radius=1, coverage=0.9, seed=7))
    grid = nx.grid_2d_graph(12, 12)  # many ties: seeds pick different, equally greedy anchors
    picks = {tuple(select_anchors(grid, radius=1, coverage=1.0, seed=s)) for s in range(4)}
    assert len(picks) > 1
    for pick in picks:
        assert anchor_coverage(grid, list(pick), 1) == 1.0


def test_empty_and_edgeless_graphs():
    assert len(select_anchors(nx.Graph())) == 0
    assert anchor_distances(nx.Graph(), []).shape == (0, 0)
    lonely = nx.empty_graph(5)
    assert list(select_anchors(lonely, coverage=1.0)) == [0, 1, 2, 3, 4]
    assert list(select_anchors(lonely, coverage=0.5)) == [0, 1, 2]


def test_scales_to_ten_thousand_nodes_quickly():
    graph = nx.barabasi_albert_graph(10_000, 5, seed=0)
    anchors = select_anchors(graph, radius=2, coverage=0.95)
    assert anchor_coverage(graph, anchors, 2) >= 0.95
    distances = anchor_distances(graph, anchors)
    assert distances.shape == (10_000, len(anchors)) and (distances >= 0).all()


# ---------------------------------------------------------------------------------------------- input forms


def test_every_input_form_gives_the_same_graph():
    graph = nx.gnm_random_graph(40, 70, seed=2)
    graph.add_node(40)  # isolated, past every edge
    edges = np.asarray(list(graph.edges()))
    both = np.concatenate([edges, edges[:, ::-1]])
    forms = [
        graph,
        as_graph(graph),
        edges,
        [tuple(e) for e in edges.tolist()],
        torch.as_tensor(both.T),
        sp.coo_matrix((np.ones(len(both)), (both[:, 0], both[:, 1])), shape=(41, 41)).tocsr(),
    ]
    reference = as_graph(graph)
    for form in forms:
        g = as_graph(form, num_nodes=41) if not isinstance(form, (nx.Graph, CSRGraph, sp.spmatrix)) else as_graph(form)
        assert g.num_nodes == 41
        np.testing.assert_array_equal(g.indptr, reference.indptr)
        np.testing.assert_array_equal(g.indices, reference.indices)
        assert list(select_anchors(form if not isinstance(form, (np.ndarray, list, torch.Tensor))
                                   else g, coverage=1.0)) == list(select_anchors(graph, coverage=1.0))


def test_pyg_data_and_directed_readings():
    from torch_geometric.data import Data

    data = Data(edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]), num_nodes=6)
    g = as_graph(data)
    assert g.directed and g.num_nodes == 6 and not g.symmetric
    np.testing.assert_array_equal(anchor_distances(data, [0])[:, 0], [0, 1, 2, 3, -1, -1])
    np.testing.assert_array_equal(anchor_distances(as_graph(data, directed=False), [3])[:, 0], [3, 2, 1, 0, -1, -1])
    # plain edge lists are undirected, like nx.Graph; directed=True keeps them as arcs
    assert not as_graph([(0, 1)]).directed
    np.testing.assert_array_equal(anchor_distances(as_graph([(0, 1)], directed=True), [1])[:, 0], [-1, 0])
    # duplicate arcs and self-loops change no distance and are dropped
    g = as_graph([(0, 1), (1, 0), (0, 1), (2, 2)], num_nodes=3)
    assert g.num_arcs == 2


def test_pyg_data_without_edge_index_is_refused():
    from torch_geometric.data import Data

    with pytest.raises(GraphInputError, match="Data has no edge_index"):
        as_graph(Data(num_nodes=3))


def test_node_labels_round_trip():
    graph = nx.les_miserables_graph()
    anchors = select_anchors(graph, radius=1, coverage=0.8)
    assert all(isinstance(a, str) and a in graph for a in anchors)
    distances = anchor_distances(graph, anchors)
    np.testing.assert_array_equal(distances, nx_distances(graph, anchors))
    labelled = as_graph([("a", "b"), ("b", "c")])
    assert labelled.node_ids == ("a", "b", "c")
    assert select_anchors(labelled, radius=1, coverage=1.0) == ["b"]


@pytest.mark.parametrize(
    ("graph", "kwargs", "message"),
    [
        ([(0, -1)], {}, "negative target node id -1"),
        ([(0, 5)], {"num_nodes": 3}, "edge target 5 is outside num_nodes=3"),
        (torch.tensor([[0, 1, 2]]), {}, r"edge_index must have shape \[2, num_edges\]"),
        (np.zeros((2, 5), dtype=np.int64), {}, r"for a \[2, E\] edge_index pass a torch tensor"),
        ([(0.5, 1.0)], {}, "non-integral floats"),
        ([(0, 1, 2)], {}, r"shape \[num_edges, 2\]"),
        (sp.csr_matrix((3, 4)), {}, "must be square"),
        ("0 1", {}, "cannot read a graph from str"),
        ([(0, 1)], {"num_nodes": 1.5}, "num_nodes must be an int"),
        ([("a", "b")], {"num_nodes": 3}, "num_nodes only applies to integer node ids"),
        ([(0, 1)], {"directed": "yes"}, "directed must be True, False or None"),
    ],
)
def test_bad_graphs_raise_clear_errors(graph, kwargs, message):
    with pytest.raises(GraphInputError, match=message):
        as_graph(graph, **kwargs)


def test_bad_arguments_raise_clear_errors():
    graph = nx.path_graph(4)
    with pytest.raises(ValueError, match="radius must be a non-negative int"):
        select_anchors(graph, radius=-1)
    with pytest.raises(ValueError, match=r"coverage must be in \(0, 1\]"):
        select_anchors(graph, coverage=0)
    with pytest.raises(ValueError, match=r"coverage must be in \(0, 1\]"):
        select_anchors(graph, coverage=1.5)
    with pytest.raises(ValueError, match="max_anchors must be a positive int"):
        select_anchors(graph, max_anchors=0)
    with pytest.raises(GraphInputError, match="node 9 is not in the graph|outside 0..3"):
        anchor_distances(graph, [9])
    with pytest.raises(GraphInputError, match="node 'x' is not in the graph"):
        anchor_distances(nx.relabel_nodes(graph, str), ["x"])
    with pytest.raises(ValueError, match="radius must be a non-negative int"):
        anchor_distances(graph, [0], max_distance=-2)


def lazy_greedy_reference(graph: nx.Graph, radius: int, coverage: float) -> list:
    """A lazy (heap) greedy with networkx balls and exact initial ball sizes: fast enough for 10^4 nodes."""
    import heapq

    n = graph.number_of_nodes()

    def ball(v):
        return nx.single_source_shortest_path_length(graph, v, cutoff=radius)

    heap = [(-len(ball(v)), v, -1) for v in graph.nodes()]
    heapq.heapify(heap)
    covered: set = set()
    target = n if coverage >= 1 else max(1, math.ceil(coverage * n - 1e-9))
    anchors: list = []
    while len(covered) < target:
        key, v, step = heapq.heappop(heap)
        if step == len(anchors):
            anchors.append(v)
            covered.update(ball(v))
            continue
        gain = sum(1 for u in ball(v) if u not in covered)
        if gain:
            heapq.heappush(heap, (-gain, v, len(anchors)))
    return anchors


@pytest.mark.slow
@pytest.mark.parametrize("coverage", [0.95, 1.0])
def test_larger_graphs_match_a_networkx_lazy_greedy(coverage):
    graph = nx.barabasi_albert_graph(20_000, 3, seed=1)
    graph.add_edges_from(nx.path_graph(range(20_000, 20_300)).edges())  # a long second component
    anchors = select_anchors(graph, radius=2, coverage=coverage)
    assert list(anchors) == lazy_greedy_reference(graph, 2, coverage)
    sample = list(anchors)[:5] + list(anchors)[-3:]
    np.testing.assert_array_equal(anchor_distances(graph, sample), nx_distances(graph, sample))


@settings(max_examples=30, deadline=None)
@given(graph=random_graphs(), seed=st.integers(0, 10))
def test_bfs_pull_kernels_agree(graph, seed):
    from structlm.graph.distances import _pull_or, _pull_rows, _push_or

    g = as_graph(graph)
    n = g.num_nodes
    rng = np.random.default_rng(seed)
    frontier = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) * (rng.random(n) < 0.5)
    reverse = g.reverse
    nonempty = np.flatnonzero(np.diff(reverse.indptr))
    full = _pull_or(reverse, frontier, nonempty, reverse.indptr[nonempty], np.empty(g.num_arcs, dtype=np.uint64))
    rows = np.flatnonzero(rng.random(n) < 0.6)
    np.testing.assert_array_equal(_pull_rows(reverse, frontier, rows)[rows], full[rows])
    np.testing.assert_array_equal(_push_or(g, frontier, np.flatnonzero(frontier)), full)
