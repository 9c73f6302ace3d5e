"""Graph front-end: graphs in, NT-LLM anchors, hop distances, node soft tokens and plans out.

* :mod:`structlm.graph.input`: networkx, PyG, scipy sparse and edge lists → one CSR form (:class:`CSRGraph`);
* :mod:`structlm.graph.anchors`: ``select_anchors`` (greedy c-hop coverage), ``anchor_coverage``;
* :mod:`structlm.graph.distances`: ``anchor_distances`` (bit-parallel BFS), ``nearest_anchor_distance``;
* :mod:`structlm.graph.pyg`: ``AddAnchorDistances``, a PyG transform (loads torch_geometric only when used);
* :mod:`structlm.graph.tokens`: ``NodeTokenizer`` — distance vectors → soft tokens, rank-preserving pretraining;
* :mod:`structlm.graph.plans`: ``node_token_plan`` and Graph-KV plans over text-attributed graphs.
"""
from structlm.lazy import lazy_exports

_EXPORTS = {
    "CSRGraph": "structlm.graph.input",
    "as_graph": "structlm.graph.input",
    "GraphInputError": "structlm.errors",
    "select_anchors": "structlm.graph.anchors",
    "anchor_coverage": "structlm.graph.anchors",
    "UNREACHABLE": "structlm.graph.distances",
    "anchor_distances": "structlm.graph.distances",
    "nearest_anchor_distance": "structlm.graph.distances",
    "AddAnchorDistances": "structlm.graph.pyg",
    "NodeTokenizer": "structlm.graph.tokens",
    "FitReport": "structlm.graph.tokens",
    "rank_margin_loss": "structlm.graph.tokens",
    "spearman": "structlm.graph.tokens",
    "node_token_plan": "structlm.graph.plans",
    "neighbourhood": "structlm.graph.plans",
    "graph_kv_plan": "structlm.graph.plans",
    "ego_graph_plan": "structlm.graph.plans",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
