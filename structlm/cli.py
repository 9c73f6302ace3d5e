"""The ``structlm`` command.

Each front-end contributes one subcommand through a ``register_<name>(subparsers)`` function below;
``main`` wires them all. Every subcommand has ``--help``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence


def _run_plan(args: argparse.Namespace) -> int:
    from structlm.plan import Plan

    if args.json:
        with open(args.json, encoding="utf-8") as handle:
            plan = Plan.from_json(handle.read())
    else:
        from structlm.testing import example_plan

        plan = example_plan()
    print(repr(plan))
    print(plan.describe())
    if args.mask:
        print(plan.mask_string())
    if args.save:
        with open(args.save, "w", encoding="utf-8") as handle:
            handle.write(plan.to_json())
        print(f"wrote {args.save}")
    if args.png:
        from structlm.viz import show_plan

        show_plan(plan, args.png)
        print(f"wrote {args.png}")
    return 0


def register_plan(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="build (or load) a plan and print its segments, positions and mask",
        description="Print a plan: its segments, spans, positions, visibility, and the token mask. "
        "Without --json it builds a small demo plan (a prefix, three parallel contexts, a query).",
    )
    parser.add_argument("--json", metavar="FILE", help="load a plan saved with Plan.to_json()")
    parser.add_argument("--save", metavar="FILE", help="write the plan as JSON")
    parser.add_argument("--mask", action="store_true", help="print the token-level mask as text")
    parser.add_argument("--png", metavar="FILE", help="write a picture of the plan (needs matplotlib)")
    parser.set_defaults(func=_run_plan)


def _run_rag(args: argparse.Namespace) -> int:
    """Build a RAG plan, print it, and answer the question on a model (a tiny random Llama when offline)."""
    from structlm import rag
    from structlm.hf import APE, StructuredLM

    contexts = args.context or [
        "the amazon river carries more water than any other river",
        "lake baikal is the deepest lake in the world",
        "mount kilimanjaro is the highest mountain in africa",
    ]
    query = args.query
    if args.model:
        lm = StructuredLM.from_pretrained(args.model)
        tokenizer = lm.tokenizer
    else:
        from structlm.testing import demo_tokenizer, tiny_llama

        tokenizer = demo_tokenizer(contexts + [query, args.prefix])
        lm = StructuredLM(tiny_llama(len(tokenizer)), tokenizer=tokenizer)
    if args.layout == "parallel":
        plan = rag.parallel(tokenizer, contexts, query, prefix=args.prefix)
    elif args.layout == "sequential":
        plan = rag.sequential(tokenizer, contexts, query, prefix=args.prefix)
    else:
        top_m = "full" if args.layout == "graph-kv-full" else 1
        plan = rag.graph_kv_rag(tokenizer, contexts, query, top_m=top_m, prefix=args.prefix)
    print(repr(plan))
    print(plan.describe())
    if args.mask:
        print(plan.mask_string())
    attention = None
    if args.layout == "parallel" and not args.no_ape:
        attention = APE(temperature=args.temperature, scale=args.scale, convention=args.convention)
    tokens = lm.generate(plan, max_new_tokens=args.max_new_tokens, attention=attention,
                         eos_token_id=tokenizer.eos_token_id)
    label = f"APE(T={args.temperature}, S={args.scale}, {args.convention})" if attention else "plain attention"
    print(f"answer ({label}{'' if args.model else ', random tiny model'}): "
          f"{tokenizer.decode(tokens[0], skip_special_tokens=True)!r}")
    print(f"cache: {lm.cache}")
    return 0


def register_rag(subparsers) -> None:
    parser = subparsers.add_parser(
        "rag",
        help="parallel-encoded RAG (APE) and Graph-KV plans: print the layout and answer a question",
        description="Build a RAG plan from contexts and a question, print its positions and visibility, and "
        "generate an answer. Offline (no --model) it runs a tiny random Llama with a word tokenizer, so the "
        "answer is noise: the layout and the cache counters are the point.",
    )
    parser.add_argument("--context", action="append", metavar="TEXT", help="a retrieved context (repeat the flag)")
    parser.add_argument("--query", default="which lake is the deepest", help="the question")
    parser.add_argument("--prefix", default="answer from the documents", help="shared prefix / instruction")
    parser.add_argument("--layout", choices=["parallel", "sequential", "graph-kv-top1", "graph-kv-full"],
                        default="parallel")
    parser.add_argument("--model", help="a Hugging Face decoder (hub id or local path)")
    parser.add_argument("--temperature", type=float, default=0.9, help="APE temperature T (parallel layout)")
    parser.add_argument("--scale", type=float, default=0.9, help="APE scale S (parallel layout)")
    parser.add_argument("--convention", choices=["repo", "paper"], default="repo",
                        help="repo: context LSE times S*T (official APE code); paper: times S")
    parser.add_argument("--no-ape", action="store_true", help="plain attention over the parallel layout")
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--mask", action="store_true", help="print the token-level mask as text")
    parser.set_defaults(func=_run_rag)


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


def register_graph(subparsers) -> None:
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


def _run_probe(args: argparse.Namespace) -> int:
    from structlm.probe import probe_source

    table = probe_source(
        args.source,
        model=args.model,
        language=args.language,
        layers=args.layers,
        out=args.out,
        snippets=args.snippets,
        baselines=not args.no_baselines,
        seed=args.seed,
        rank=args.rank,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_length=args.max_length,
        progress=not args.quiet,
    )
    print(table.to_markdown())
    meta = table.meta
    print(f"train/valid/test snippets: {meta.get('train')}/{meta.get('valid')}/{meta.get('test')}; skipped: {meta.get('skipped')}")
    if args.out:
        print(f"wrote {args.out}/probe.md, probe.json, probe.png")
    return 0


def register_probe(subparsers) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="AST-Probe: how much of the syntax tree each layer of a model holds (F1 per layer)",
        description="Collect functions from the source files under --source, turn each into AST-Probe's "
        "(d, c, u) tuple, and train one probe per layer on the frozen hidden states of --model; report "
        "constituent precision/recall/F1 per layer next to the random-weights baseline (layer 0 is the "
        "embedding baseline). Set OMP_WAIT_POLICY=PASSIVE on shared CPUs.",
    )
    parser.add_argument("--model", default=None, help="HF model name or local folder (default: the packaged MiniLM-L6)")
    parser.add_argument("--language", default="python", help="language of the source files (default: python)")
    parser.add_argument("--source", required=True, metavar="DIR", help="directory (or file) of source code")
    parser.add_argument("--layers", type=int, nargs="+", help="layers to probe (default: all, 0 = embeddings)")
    parser.add_argument("--out", metavar="DIR", help="write probe.md, probe.json and probe.png here")
    parser.add_argument("--snippets", type=int, default=600, help="functions to use (split 70/10/20)")
    parser.add_argument("--rank", type=int, default=128, help="dimension of the syntactic subspace")
    parser.add_argument("--epochs", type=int, default=20, help="maximum epochs (early stopping, patience 5)")
    parser.add_argument("--batch-size", type=int, default=32, help="probe batch size (paper: 32)")
    parser.add_argument("--max-length", type=int, default=256, help="maximum sub-words per snippet")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-baselines", action="store_true", help="skip the random-weights baseline")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run_probe)


# Front-ends append their register functions here.
def _run_demo(args: argparse.Namespace) -> int:
    from structlm.demo import run_demo

    run_demo(out=args.out)
    return 0


def register_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a short offline tour: plans, RAG parallel encoding with caching, graph anchors, code ASTs",
        description="Run every part of structlm on embedded defaults (tiny random model, karate-club graph, a "
        "standard-library function) and print one measured check per step.",
    )
    parser.add_argument("--out", metavar="DIR", help="also write a picture of the demo plan into DIR")
    parser.set_defaults(func=_run_demo)


REGISTRARS: list[Callable] = [register_demo, register_plan, register_rag, register_graph, register_probe]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="structlm", description="Structure-aware inputs for Hugging Face models.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # torch's OpenMP threads spin-wait by default, which makes small ops many times slower on shared CPUs;
    # the command sets the passive policy before anything imports torch (an explicit setting wins).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, ImportError) as error:  # PlanError, cache and parse errors are ValueErrors
        print(f"structlm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
