"""Anchor selection + distance matrix on Barabási–Albert graphs, against a networkx version of the same algorithm.

Usage::

    python benchmarks/graph.py                      # 10^4, 10^5, 10^6 nodes; networkx baseline on 10^4 and 10^5
    python benchmarks/graph.py --sizes 10000 --baseline-max 10000
    python benchmarks/graph.py --spearman           # NodeTokenizer: held-out Spearman before/after pretraining

Each size runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own: the table shows it
after the timed part and, in brackets, before it (imports + edge generation). The traced peak (tracemalloc, which
sees numpy and scipy buffers) comes from a second, untimed pass, since tracing slows Python allocations. Wall time
and process CPU time are both printed: on a shared 2-core machine the wall clock mostly measures the neighbours.
The networkx baseline runs the same lazy greedy (same upper bounds, same tie-break) with
``nx.single_source_shortest_path_length`` balls and one BFS per anchor for distances; the script checks that both
pick the same anchors and distances.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything imports torch: no spinning OpenMP workers

import argparse
import heapq
import json
import math
import random
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

RADIUS, COVERAGE, M = 2, 0.95, 5


def ba_edges(n: int, m: int, seed: int = 0) -> np.ndarray:
    """Barabási–Albert edges ``[E, 2]`` by networkx's procedure (star seed, m distinct degree-weighted targets).

    Written out here because ``nx.barabasi_albert_graph`` on 10^6 nodes builds a multi-GB dict-of-dicts first.
    """
    rng = random.Random(seed)
    edges = np.empty(((n - m - 1) * m + m, 2), dtype=np.int64)
    edges[:m, 0], edges[:m, 1] = 0, np.arange(1, m + 1)
    repeated = [0] * m + list(range(1, m + 1))
    e = m
    draw = rng.random
    for source in range(m + 1, n):
        size = len(repeated)
        targets: set[int] = set()
        while len(targets) < m:
            targets.add(repeated[int(draw() * size)])
        chosen = list(targets)
        edges[e:e + m, 0], edges[e:e + m, 1] = source, chosen
        e += m
        repeated.extend(chosen)
        repeated.extend([source] * m)
    return edges


class Clock:
    """Wall and process CPU seconds of a block."""

    def __enter__(self) -> "Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def nx_select_anchors(graph, radius: int, coverage: float) -> list[int]:
    """The same lazy greedy, written the straightforward way with networkx and Python sets."""
    import networkx as nx

    n = graph.number_of_nodes()
    degree = dict(graph.degree())
    bounds = {}
    for v in graph.nodes():  # same bounds as structlm: 1 + deg + sum of (deg - 1) over neighbours, capped at n
        bounds[v] = min(n, 1 + degree[v] + (sum(degree[u] - 1 for u in graph.neighbors(v)) if radius >= 2 else 0))
    heap = [(-bounds[v] * n + v, v, -1) for v in graph.nodes()]
    heapq.heapify(heap)
    covered: set[int] = set()
    target = n if coverage >= 1 else max(1, math.ceil(coverage * n - 1e-9))
    anchors: list[int] = []
    while len(covered) < target:
        key, v, step = heapq.heappop(heap)
        if step == len(anchors):
            anchors.append(v)
            covered.update(nx.single_source_shortest_path_length(graph, v, cutoff=radius))
            continue
        gain = sum(1 for u in nx.single_source_shortest_path_length(graph, v, cutoff=radius) if u not in covered)
        if gain:
            heapq.heappush(heap, (-gain * n + v, v, len(anchors)))
    return anchors


def nx_anchor_distances(graph, anchors) -> np.ndarray:
    import networkx as nx

    out = np.full((graph.number_of_nodes(), len(anchors)), -1, dtype=np.int32)
    for k, a in enumerate(anchors):
        for v, d in nx.single_source_shortest_path_length(graph, a).items():
            out[v, k] = d
    return out


def run_one(n: int, baseline: bool, seed: int) -> dict:
    from structlm.graph import anchor_coverage, anchor_distances, as_graph, select_anchors

    import networkx  # noqa: F401  (imported before the clocks start: as_graph checks for networkx graphs)

    warm = ba_edges(200, M, seed)  # first calls pay for imports and scipy set-up; keep that out of the figures
    anchor_distances(as_graph(warm), select_anchors(as_graph(warm), radius=RADIUS, coverage=COVERAGE))
    edges = ba_edges(n, M, seed)
    result: dict = {"nodes": n, "edges": int(len(edges))}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with Clock() as build:
        graph = as_graph(edges, num_nodes=n)
    with Clock() as select:
        anchors = select_anchors(graph, radius=RADIUS, coverage=COVERAGE)
    with Clock() as dist:
        distances = anchor_distances(graph, anchors)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del distances, graph
    # Memory in a second, untimed pass: tracemalloc slows Python-level allocation, so it stays off the clocks.
    tracemalloc.start()
    graph = as_graph(edges, num_nodes=n)
    anchors = select_anchors(graph, radius=RADIUS, coverage=COVERAGE)
    distances = anchor_distances(graph, anchors)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result.update(
        anchors=len(anchors), coverage=anchor_coverage(graph, anchors, RADIUS), max_hops=int(distances.max()),
        build_wall=build.wall, build_cpu=build.cpu, select_wall=select.wall, select_cpu=select.cpu,
        dist_wall=dist.wall, dist_cpu=dist.cpu, traced_peak_mb=traced_peak / 2**20,
        distance_matrix_mb=distances.nbytes / 2**20, rss_before_mb=rss_before, rss_after_mb=rss_after,
    )
    result["ours_wall"] = build.wall + select.wall + dist.wall
    result["ours_cpu"] = build.cpu + select.cpu + dist.cpu
    if baseline:
        import networkx as nx

        del distances
        nx_graph = nx.Graph()
        nx_graph.add_nodes_from(range(n))
        nx_graph.add_edges_from(edges.tolist())
        with Clock() as nx_select:
            nx_anchors = nx_select_anchors(nx_graph, RADIUS, COVERAGE)
        with Clock() as nx_dist:
            nx_distances = nx_anchor_distances(nx_graph, nx_anchors)
        same = nx_anchors == list(anchors)
        if same:
            same = bool(np.array_equal(nx_distances, anchor_distances(graph, anchors)))
        result.update(nx_select_wall=nx_select.wall, nx_select_cpu=nx_select.cpu, nx_dist_wall=nx_dist.wall,
                      nx_dist_cpu=nx_dist.cpu, same_answer=same)
        result["nx_wall"] = nx_select.wall + nx_dist.wall
        result["nx_cpu"] = nx_select.cpu + nx_dist.cpu
        # networkx's time excludes building its graph; ours includes building the CSR
        result["speedup_wall"] = result["nx_wall"] / result["ours_wall"]
        result["speedup_cpu"] = result["nx_cpu"] / result["ours_cpu"]
    return result


def report(rows: list[dict]) -> str:
    lines = [
        f"radius={RADIUS} coverage={COVERAGE} Barabási–Albert m={M}; times in s (wall / process CPU)",
        "| nodes | anchors | build | select | distances | total | peak RSS MB (before) | traced peak MB | "
        "networkx total | speedup (wall / CPU) | same anchors+distances |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        def pair(key: str) -> str:
            return f"{r[key + '_wall']:.2f} / {r[key + '_cpu']:.2f}"

        nx_total = pair("nx") if "nx_wall" in r else "-"
        speed = f"{r['speedup_wall']:.0f}× / {r['speedup_cpu']:.0f}×" if "speedup_wall" in r else "-"
        same = str(r.get("same_answer", "-"))
        lines.append(f"| {r['nodes']:,} | {r['anchors']} | {pair('build')} | {pair('select')} | {pair('dist')} | "
                     f"{pair('ours')} | {r['rss_after_mb']:.0f} ({r['rss_before_mb']:.0f}) | "
                     f"{r['traced_peak_mb']:.0f} | {nx_total} | {speed} | {same} |")
    return "\n".join(lines)


def spearman_table(steps: int = 300) -> str:
    """NodeTokenizer pretraining: held-out Spearman (embedding distance vs hop distance) before and after fit."""
    import networkx as nx
    import torch

    from structlm.graph import anchor_distances, select_anchors
    from structlm.graph.tokens import NodeTokenizer

    lines = ["| graph | radius | anchors (95 %) | Spearman before | after | held-out pairs | loss first -> last |",
             "|---|---|---|---|---|---|---|"]
    for name, graph, radius in [("grid 20x20", nx.grid_2d_graph(20, 20), 2), ("karate club", nx.karate_club_graph(), 1),
                                ("BA n=5000 m=3", nx.barabasi_albert_graph(5000, 3, seed=0), 2)]:
        torch.manual_seed(0)
        anchors = select_anchors(graph, radius=radius, coverage=0.95)
        distances = anchor_distances(graph, anchors)
        tokenizer = NodeTokenizer(len(anchors), hidden_size=64)
        rep = tokenizer.fit(graph, distances, steps=steps, progress=False, seed=0)
        lines.append(f"| {name} | {radius} | {len(anchors)} | {rep.spearman_before:.3f} | {rep.spearman_after:.3f} | "
                     f"{rep.heldout_pairs} | {rep.losses[0]:.4f} -> {rep.losses[-1]:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--baseline-max", type=int, default=100_000,
                        help="run the networkx baseline on sizes up to this many nodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--spearman", action="store_true",
                        help="instead: NodeTokenizer held-out Spearman before/after pretraining on three graphs")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: one size, JSON on stdout
    args = parser.parse_args(argv)
    if args.spearman:
        print(spearman_table())
        return 0
    if args.one:
        print(json.dumps(run_one(args.one, args.one <= args.baseline_max, args.seed)))
        return 0
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--baseline-max", str(args.baseline_max),
               "--seed", str(args.seed)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print(report(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
