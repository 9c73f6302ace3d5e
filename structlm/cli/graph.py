"""``structlm graph``: NT-LLM anchors and hop distances for a graph file or a built-in networkx graph."""
from __future__ import annotations

import argparse


def _read_graph(args: argparse.Namespace):
    import networkx as nx

    if args.edges:
        pairs = []
        with open(args.edges, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                words = line.split("#", 1)[0].split()
                if not words:
                    continue
                if len(words) < 2:
                    raise ValueError(f"{args.edges}:{number}: an edge needs two node ids, got {line.strip()!r}")
                pairs.append(tuple(int(w) if w.lstrip("-").isdigit() else w for w in words[:2]))
        graph = nx.DiGraph() if args.directed else nx.Graph()
        graph.add_edges_from(pairs)
        return graph
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
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import networkx as nx

        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5))
        layout = nx.spring_layout(graph, seed=0)
        chosen = set(anchors)
        nx.draw_networkx(graph, layout, ax=left, node_size=120, with_labels=len(nodes) <= 80, font_size=6,
                         node_color=["#e07b20" if v in chosen else "#9cc3e6" for v in nodes], edge_color="#bbbbbb")
        left.set_title(f"{len(anchors)} anchors (orange), radius {args.radius}")
        left.axis("off")
        image = right.imshow(distances, aspect="auto", interpolation="nearest")
        right.set_xlabel("anchor")
        right.set_ylabel("node")
        right.set_title("hop distances")
        fig.colorbar(image, ax=right)
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        plt.close(fig)
        print(f"wrote {args.png}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="NT-LLM anchors and hop distances for a graph (edge-list file or built-in networkx graph)",
        description="Choose anchors by greedy coverage of radius-c balls and print every node's hop distances "
        "to them. Without --edges it uses a built-in networkx graph.",
    )
    parser.add_argument("--edges", metavar="FILE", help="edge list: two node ids per line, '#' starts a comment")
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
