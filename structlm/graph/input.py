"""Graph input: networkx, PyG, scipy sparse and edge lists all become one CSR form (:class:`CSRGraph`).

Kept apart from :mod:`structlm.graph` (anchors and distances) because it is a separate idea: reading every
caller's graph the same way, with clear errors for graphs that contradict themselves, and mapping node ids back.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Hashable, Iterable

import numpy as np
import scipy.sparse as sp

from structlm.errors import GraphInputError

__all__ = ["CSRGraph", "as_graph"]


# --------------------------------------------------------------------------------------------------------------
# One internal form
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CSRGraph:
    """Out-arcs in compressed sparse row form: the arcs of node ``v`` go to ``indices[indptr[v]:indptr[v + 1]]``.

    Rows are sorted and hold no duplicate arcs and no self-loops (neither changes a hop distance). ``node_ids`` maps
    internal index ``i`` back to the caller's id; ``None`` means ids are the indices themselves.
    """

    indptr: np.ndarray
    indices: np.ndarray
    directed: bool
    node_ids: tuple | None = None

    @property
    def num_nodes(self) -> int:
        return len(self.indptr) - 1

    @property
    def num_arcs(self) -> int:
        return int(self.indptr[-1])

    def __len__(self) -> int:
        return self.num_nodes

    def __repr__(self) -> str:
        kind = "directed" if self.directed else "undirected"
        return f"CSRGraph({kind}, num_nodes={self.num_nodes}, num_arcs={self.num_arcs})"

    @cached_property
    def out_degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    @cached_property
    def adjacency(self) -> sp.csr_matrix:
        """Boolean scipy view sharing the index arrays (no copy)."""
        data = np.ones(self.num_arcs, dtype=bool)
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.num_nodes, self.num_nodes), copy=False)

    @cached_property
    def symmetric(self) -> bool:
        """Whether every arc has its reverse; true for every undirected graph."""
        if not self.directed:
            return True
        reverse = self.reverse
        return bool(np.array_equal(reverse.indptr, self.indptr) and np.array_equal(reverse.indices, self.indices))

    @cached_property
    def reverse(self) -> CSRGraph:
        """The graph with every arc turned round (in-arcs per node): what a pull-style BFS reads."""
        if not self.directed:
            return self
        transposed = self.adjacency.T.tocsr()
        transposed.sort_indices()
        return CSRGraph(transposed.indptr.astype(np.int64), transposed.indices, True, self.node_ids)

    @cached_property
    def _index_of(self) -> dict[Hashable, int] | None:
        return None if self.node_ids is None else {node: i for i, node in enumerate(self.node_ids)}

    def index(self, nodes: Iterable[Hashable] | np.ndarray) -> np.ndarray:
        """Internal indices of the caller's node ids, with a clear error for ids the graph does not have."""
        if self._index_of is None:
            if isinstance(nodes, (str, bytes)):
                raise GraphInputError(f"node ids of this graph are integers 0..{self.num_nodes - 1}, got {nodes!r}")
            try:
                arr = np.asarray(list(nodes) if not isinstance(nodes, np.ndarray) else nodes)
            except TypeError as exc:
                raise GraphInputError(f"expected a sequence of node ids, got {type(nodes).__name__}") from exc
            if arr.size == 0:
                return np.empty(0, dtype=np.int64)
            if arr.dtype.kind not in "iu":
                raise GraphInputError(f"node ids of this graph are integers, got dtype {arr.dtype}")
            arr = arr.astype(np.int64).ravel()
            bad = arr[(arr < 0) | (arr >= self.num_nodes)]
            if bad.size:
                raise GraphInputError(f"node id {int(bad[0])} is outside 0..{self.num_nodes - 1}")
            return arr
        index_of = self._index_of
        out = []
        for node in nodes:
            try:
                out.append(index_of[node])
            except (KeyError, TypeError):
                raise GraphInputError(f"node {node!r} is not in the graph") from None
        return np.asarray(out, dtype=np.int64)

    def ids(self, index: np.ndarray) -> np.ndarray | list:
        """The caller's ids for internal indices: an int64 array for index-based graphs, else a list."""
        index = np.asarray(index, dtype=np.int64)
        if self.node_ids is None:
            return index
        return [self.node_ids[i] for i in index.tolist()]


def _from_arcs(src: np.ndarray, dst: np.ndarray, num_nodes: int, directed: bool, node_ids: tuple | None) -> CSRGraph:
    """Validate arc arrays and build the canonical CSR (sorted, deduplicated, no self-loops)."""
    if num_nodes < 0:
        raise GraphInputError(f"num_nodes must be non-negative, got {num_nodes}")
    if num_nodes >= 2**31 - 1:
        raise GraphInputError(f"at most 2**31 - 2 nodes are supported, got {num_nodes}")
    for name, arr in (("source", src), ("target", dst)):
        if arr.size and int(arr.min()) < 0:
            raise GraphInputError(f"negative {name} node id {int(arr.min())}")
        if arr.size and int(arr.max()) >= num_nodes:
            raise GraphInputError(f"edge {name} {int(arr.max())} is outside num_nodes={num_nodes}")
    keep = src != dst
    src, dst = src[keep], dst[keep]
    if not directed:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    index_dtype = np.int32 if num_nodes < 2**31 - 1 else np.int64
    matrix = sp.csr_matrix(
        (np.ones(len(src), dtype=bool), (src.astype(index_dtype), dst.astype(index_dtype))),
        shape=(num_nodes, num_nodes),
    )
    matrix.sum_duplicates()  # also sorts each row
    return CSRGraph(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32), bool(directed), node_ids)


def _integer_ids(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise GraphInputError(f"{what} must be integer node ids, got non-integral floats")
        return arr.astype(np.int64)
    if arr.dtype.kind == "b":
        raise GraphInputError(f"{what} must be integer node ids, got booleans")
    if arr.dtype.kind not in "iu":
        raise GraphInputError(f"{what} must be integer node ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _check_num_nodes(num_nodes: Any) -> int:
    if num_nodes is None:
        raise GraphInputError("num_nodes is required here")
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)):
        raise GraphInputError(f"num_nodes must be an int, got {type(num_nodes).__name__}")
    return int(num_nodes)


def as_graph(graph: Any, *, num_nodes: int | None = None, directed: bool | None = None) -> CSRGraph:
    """Turn any supported graph into a :class:`CSRGraph` (a ``CSRGraph`` comes back unchanged).

    Accepted: networkx ``Graph``/``DiGraph``/multigraphs (node ids kept in ``G.nodes`` order); PyG ``Data`` (uses
    ``edge_index`` and ``num_nodes``); a torch ``edge_index`` tensor of shape ``[2, E]``; a square scipy sparse
    matrix (stored entries other than explicit zeros are arcs row -> column); edge lists or arrays of shape
    ``[E, 2]`` (integer ids ``0..num_nodes-1``, or any hashable labels, mapped in sorted order).

    ``directed=None`` keeps each source's own reading: networkx by graph type; ``edge_index`` and scipy matrices as
    arcs (PyG stores an undirected edge as two arcs); plain edge lists as undirected edges, like ``nx.Graph``.
    ``directed=False`` adds the reverse of every arc; ``directed=True`` keeps arcs as given.
    ``num_nodes`` (index-based inputs only) adds isolated nodes past the largest id.
    """
    if isinstance(graph, CSRGraph):
        if directed is False and graph.directed:
            return _from_arcs(*_arcs(graph), graph.num_nodes, False, graph.node_ids)
        return graph
    if directed is not None and not isinstance(directed, bool):
        raise GraphInputError(f"directed must be True, False or None, got {directed!r}")

    try:
        import networkx as nx
    except ImportError:  # pragma: no cover - networkx is a dependency
        nx = None
    if nx is not None and isinstance(graph, nx.Graph):
        nodes = tuple(graph.nodes())
        index_of = {node: i for i, node in enumerate(nodes)}
        count = graph.number_of_edges()
        src = np.fromiter((index_of[u] for u, _ in graph.edges()), dtype=np.int64, count=count)
        dst = np.fromiter((index_of[v] for _, v in graph.edges()), dtype=np.int64, count=count)
        is_directed = graph.is_directed() if directed is None else directed
        ids = None if nodes == tuple(range(len(nodes))) else nodes
        return _from_arcs(src, dst, len(nodes), is_directed, ids)

    if sp.issparse(graph):
        if graph.ndim != 2 or graph.shape[0] != graph.shape[1]:
            raise GraphInputError(f"a sparse adjacency matrix must be square, got shape {graph.shape}")
        coo = sp.coo_matrix(graph)
        nonzero = coo.data != 0
        n = graph.shape[0] if num_nodes is None else _check_num_nodes(num_nodes)
        if n < graph.shape[0]:
            raise GraphInputError(f"num_nodes={n} is smaller than the matrix ({graph.shape[0]} rows)")
        return _from_arcs(coo.row[nonzero].astype(np.int64), coo.col[nonzero].astype(np.int64), n,
                          True if directed is None else directed, None)

    edge_index = getattr(graph, "edge_index", None)
    if edge_index is None and type(graph).__module__.startswith("torch_geometric"):
        raise GraphInputError(f"{type(graph).__name__} has no edge_index: store the graph as edge_index "
                              "(a sparse adj_t is not read)")
    if edge_index is not None or _is_tensor(graph):
        if edge_index is not None:  # a PyG Data-like object
            if num_nodes is None:
                num_nodes = getattr(graph, "num_nodes", None)
        else:
            edge_index = graph
        arr = edge_index.detach().cpu().numpy() if _is_tensor(edge_index) else np.asarray(edge_index)
        if arr.ndim != 2 or arr.shape[0] != 2:
            raise GraphInputError(f"edge_index must have shape [2, num_edges], got {list(arr.shape)}")
        arr = _integer_ids(arr, "edge_index")
        n = _infer_num_nodes(arr, num_nodes)
        return _from_arcs(arr[0], arr[1], n, True if directed is None else directed, None)

    return _from_edge_list(graph, num_nodes, False if directed is None else directed)


def _is_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")


def _infer_num_nodes(arr: np.ndarray, num_nodes: Any) -> int:
    largest = int(arr.max()) + 1 if arr.size else 0
    if num_nodes is None:
        return largest
    n = _check_num_nodes(num_nodes)
    return n  # _from_arcs reports any id >= n


def _from_edge_list(edges: Any, num_nodes: int | None, directed: bool) -> CSRGraph:
    if isinstance(edges, (str, bytes, dict)) or not hasattr(edges, "__iter__"):
        raise GraphInputError(
            f"cannot read a graph from {type(edges).__name__}: pass a networkx graph, PyG Data, an edge_index "
            "tensor, a scipy sparse matrix, or [num_edges, 2] edge pairs")
    if not isinstance(edges, np.ndarray):
        edges = list(edges)
    if len(edges) == 0:
        n = 0 if num_nodes is None else _check_num_nodes(num_nodes)
        return _from_arcs(np.empty(0, np.int64), np.empty(0, np.int64), n, directed, None)
    try:
        arr = np.asarray(edges)
    except ValueError as exc:
        raise GraphInputError(f"edge pairs must all have two ends: {exc}") from None
    if arr.dtype.kind == "O" and arr.ndim == 1:
        raise GraphInputError("every edge must be a pair (source, target)")
    if arr.ndim != 2 or arr.shape[1] != 2:
        hint = " (for a [2, E] edge_index pass a torch tensor, or transpose it)" if arr.ndim == 2 else ""
        raise GraphInputError(f"edge pairs must have shape [num_edges, 2], got {list(arr.shape)}{hint}")
    if arr.dtype.kind in "iufb":
        arr = _integer_ids(arr, "edge list")
        return _from_arcs(arr[:, 0], arr[:, 1], _infer_num_nodes(arr, num_nodes), directed, None)
    if num_nodes is not None:
        raise GraphInputError("num_nodes only applies to integer node ids; labelled edges define their nodes")
    flat = [node for pair in edges for node in pair]
    try:
        labels = sorted(set(flat))
    except TypeError:
        labels = list(dict.fromkeys(flat))  # unorderable labels: first appearance
    index_of = {node: i for i, node in enumerate(labels)}
    coded = np.asarray([index_of[node] for node in flat], dtype=np.int64).reshape(-1, 2)
    return _from_arcs(coded[:, 0], coded[:, 1], len(labels), directed, tuple(labels))


def _arcs(graph: CSRGraph) -> tuple[np.ndarray, np.ndarray]:
    src = np.repeat(np.arange(graph.num_nodes, dtype=np.int64), graph.out_degree)
    return src, graph.indices.astype(np.int64)
