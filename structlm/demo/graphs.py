"""The demo's graph step: NT-LLM anchors on the karate club, checked against networkx."""
from __future__ import annotations

from structlm.demo.tour import Tour

__all__ = ["graph_step"]


def graph_step(tour: Tour) -> None:
    import networkx as nx

    from structlm.graph import anchor_coverage, anchor_distances, select_anchors

    graph = nx.karate_club_graph()
    anchors = select_anchors(graph, radius=2, coverage=1.0)
    distances = anchor_distances(graph, anchors)
    oracle = nx.single_source_shortest_path_length(graph, anchors[0])
    same = all(distances[v, 0] == oracle[v] for v in graph.nodes)
    tour.say(f"karate club ({graph.number_of_nodes()} nodes): anchors {[int(a) for a in anchors]} cover "
             f"{anchor_coverage(graph, anchors, radius=2):.0%} within 2 hops; distance matrix {distances.shape}, "
             f"equal to networkx shortest paths: {same}")
