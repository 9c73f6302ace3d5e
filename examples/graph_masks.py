"""Masks from real small graphs: NT-LLM node tokens (karate club) and Graph-KV ego graphs (Les Misérables).

    python examples/graph_masks.py                  # writes graph_anchors.png, graph_node_tokens.png,
    python examples/graph_masks.py --out /tmp/pics  #        graph_ego_kv.png into --out (default: .)

Steps:
1. karate club: greedy anchors whose 1-hop balls cover every member, hop distances to them, and a picture;
2. a NodeTokenizer pretrained with the rank-preserving loss (held-out Spearman before/after), then an NT-LLM prompt
   plan with two members' soft tokens between the instruction and the question;
3. Les Misérables: a two-hop Graph-KV plan around one character (outer ring -> inner ring -> centre; the question
   sees all), built by ``structlm.graph.plans.ego_graph_plan`` on top of ``structlm.rag.graphs``.
Everything runs offline: the tokenizer is a word-level one built from the texts, no model is needed.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from structlm.graph import anchor_coverage, anchor_distances, select_anchors  # noqa: E402
from structlm.graph.plans import ego_graph_plan, node_token_plan  # noqa: E402
from structlm.graph.tokens import NodeTokenizer  # noqa: E402
from structlm.rag import demo_tokenizer  # noqa: E402


def draw_anchors(graph: nx.Graph, anchors: list, distances: np.ndarray, path: str) -> None:
    """The graph with anchors in orange beside the node x anchor distance matrix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [1.3, 1]})
    layout = nx.spring_layout(graph, seed=3)
    colours = ["#e07b20" if node in anchors else "#9cc3e6" for node in graph.nodes()]
    nx.draw_networkx(graph, layout, ax=left, node_color=colours, node_size=260, font_size=7, edge_color="#bbbbbb")
    left.set_title(f"{len(anchors)} anchors (orange): every node within 1 hop of one")
    left.axis("off")
    image = right.imshow(distances, aspect="auto", cmap="viridis", interpolation="nearest")
    right.set_xticks(range(len(anchors)), [str(a) for a in anchors])
    right.set_xlabel("anchor")
    right.set_ylabel("node")
    right.set_title("hop distance to each anchor")
    fig.colorbar(image, ax=right)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="folder for the PNG files")
    parser.add_argument("--steps", type=int, default=150, help="NodeTokenizer pretraining steps")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)

    # 1. anchors and distances on the karate club
    karate = nx.karate_club_graph()
    anchors = select_anchors(karate, radius=1, coverage=1.0).tolist()
    distances = anchor_distances(karate, anchors)
    print(f"karate club: {len(karate)} members, anchors {anchors}, "
          f"1-hop coverage {anchor_coverage(karate, anchors, 1):.2f}")
    draw_anchors(karate, anchors, distances, os.path.join(args.out, "graph_anchors.png"))

    # 2. node tokens, pretrained to keep the order of hop distances, inside an NT-LLM prompt
    node_tokenizer = NodeTokenizer(len(anchors), hidden_size=32, tokens_per_node=1, embed_dim=32)
    report = node_tokenizer.fit(karate, distances, steps=args.steps, batch_size=512, num_sources=24)
    print(f"NodeTokenizer: {report}")
    instruction, question = "You see two club members .", "Are they in the same faction ?"
    tok = demo_tokenizer([instruction, question])
    with torch.no_grad():
        soft = node_tokenizer(distances[[0, 33]])
    plan = node_token_plan(tok, soft, prefix=instruction, query=question, names=["member0", "member33"])
    print(plan.describe())
    plan.show(os.path.join(args.out, "graph_node_tokens.png"), title="NT-LLM prompt: soft node tokens")

    # 3. a two-hop Graph-KV ego graph over Les Misérables
    miserables = nx.les_miserables_graph()
    texts = {name: f"{name} is a character of Les Misérables ." for name in miserables}
    centre = "Fantine"
    query = f"Who is close to {centre} ?"
    tok = demo_tokenizer(list(texts.values()) + [query, "Answer from the characters ."])
    ego = ego_graph_plan(tok, miserables, texts, centre, query, hops=2, prefix="Answer from the characters .",
                         max_nodes=60)
    rounds = sorted({s.start for s in ego if s.role in ("source", "target")})
    print(f"Graph-KV ego graph of {centre}: {ego.num_segments} segments, {len(ego)} tokens, chunk starts {rounds}")
    ego.show(os.path.join(args.out, "graph_ego_kv.png"), title=f"Graph-KV: 2-hop ego graph of {centre}")
    for name in ("graph_anchors.png", "graph_node_tokens.png", "graph_ego_kv.png"):
        print("wrote", os.path.join(args.out, name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
