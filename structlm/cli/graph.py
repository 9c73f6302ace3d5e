"""``structlm graph``: NT-LLM anchors and hop distances for a graph file or a built-in networkx graph."""
from __future__ import annotations

import argparse


def _read_graph(args: argparse.Namespace):
    if args.edges:
        from structlm.cli.inputs import read_graph

        return read_graph(args.edges, directed=args.directed)
    import networkx as nx

    builders = {"karate": nx.karate_club_graph, "les_miserables": nx.les_miserables_graph,
                "florentine": nx.florentine_families_graph, "davis": nx.davis_southern_women_graph}
    return builders[args.builtin]()


def _run_graph(args: argparse.Namespace) -> int:
    """Anchors and hop distances for a graph file or a built-in networkx graph; optionally a picture."""
    import numpy as np

    from structlm.graph import anchor_coverage, anchor_distances, as_graph, select_anchors

    graph = _read_graph(args)
    csr = as_graph(graph)
    anchors = select_anchors(csr, radius=args.radius, coverage=args.coverage, max_anchors=args.max_anchors,
                             seed=args.seed)
    anchors = anchors.tolist() if isinstance(anchors, np.ndarray) else list(anchors)
    distances = anchor_distances(csr, anchors, max_distance=args.max_distance)
    print(f"{csr!r}; radius {args.radius}, target coverage {args.coverage}")
    print(f"{len(anchors)} anchors (coverage {anchor_coverage(csr, anchors, args.radius):.4f}): {anchors}")
    nodes = list(graph.nodes())
    for row in range(min(args.rows, len(nodes))):
        print(f"  {nodes[row]!s:>20}  {distances[row].tolist()}")
    if len(nodes) > args.rows:
        print(f"  ... {len(nodes) - args.rows} more rows (unreachable = -1)")
    if args.npy:
        np.save(args.npy, distances)
        print(f"wrote {args.npy}")
    if args.png:
        from structlm.viz import show_graph

        show_graph(graph, anchors, distances, args.png, radius=args.radius,
                   title=f"NT-LLM anchors: radius {args.radius}, coverage {args.coverage}")
        print(f"wrote {args.png}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="NT-LLM anchors and hop distances for a graph (edge-list file or built-in networkx graph)",
        description="Choose anchors by greedy coverage of radius-c balls and print every node's hop distances "
        "to them. Without --edges it uses a built-in networkx graph.",
    )
    parser.add_argument("--edges", metavar="FILE", help="a graph file: edge list (two node ids per line, '#' starts a comment), "
                        "GraphML (.graphml) or GML (.gml)")
    parser.add_argument("--builtin", choices=["karate", "les_miserables", "florentine", "davis"], default="karate")
    parser.add_argument("--directed", action="store_true", help="read --edges as arcs (source target)")
    parser.add_argument("--radius", type=int, default=2, help="ball radius c in hops")
    parser.add_argument("--coverage", type=float, default=0.95, help="fraction of nodes to cover, in (0, 1]")
    parser.add_argument("--max-anchors", type=int, help="anchor budget")
    parser.add_argument("--seed", type=int, help="seeded random tie-break (default: smallest node first)")
    parser.add_argument("--max-distance", type=int, help="stop distance searches at this depth")
    parser.add_argument("--rows", type=int, default=10, help="distance rows to print")
    parser.add_argument("--npy", metavar="FILE", help="save the distance matrix with numpy.save")
    parser.add_argument("--png", metavar="FILE", help="write the graph with its anchors and the distance matrix")
    parser.set_defaults(func=_run_graph)
