"""Masks from real small graphs: NT-LLM node tokens (karate club) and Graph-KV ego graphs (Les Misérables).

    python examples/graph_masks.py                  # writes graph_anchors.png, graph_node_tokens.png,
    python examples/graph_masks.py --out /tmp/pics  #        graph_ego_kv.png into --out (default: .)
    python examples/graph_masks.py --quick          # fewer pretraining steps, a one-hop ego graph
    python examples/graph_masks.py --model PATH     # any Hugging Face decoder: its tokenizer, its width

Steps:
1. karate club: greedy anchors whose 1-hop balls cover every member, hop distances to them, and a picture;
2. a NodeTokenizer pretrained with the rank-preserving loss (held-out Spearman before/after), then an NT-LLM prompt
   plan with two members' soft tokens between the instruction and the question;
3. Les Misérables: a two-hop Graph-KV plan around one character (outer ring -> inner ring -> centre; the question
   sees all), built by ``structlm.graph.plans.ego_graph_plan`` on top of ``structlm.rag.graphs``.
4. both plans run on a model: offline a tiny random Llama with a word-level tokenizer built from the texts (the
   predictions are noise, the point is that soft tokens and Graph-KV masks execute); with ``--model`` any Hugging Face
   decoder (its own tokenizer, soft tokens as wide as its hidden size; the node tokenizer's projector is untrained,
   so train it before reading anything into the answer).
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
from structlm.viz import show_graph  # noqa: E402


def load_model(name: str | None, texts: list[str]):
    """``(lm, tokenizer)``: the named Hugging Face model, or a tiny random Llama with a word tokenizer (offline)."""
    from structlm.hf import StructuredLM

    if name:
        lm = StructuredLM.from_pretrained(name)
        return lm, lm.tokenizer
    from structlm.testing import tiny_llama

    tokenizer = demo_tokenizer(texts)
    return StructuredLM(tiny_llama(len(tokenizer)), tokenizer=tokenizer), tokenizer


def next_word(lm, tokenizer, plan) -> str:
    """The model's most likely next token after the plan's last segment."""
    logits = lm.forward(plan, logits_for="last").logits
    return tokenizer.decode([int(logits[0, -1].argmax())])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="folder for the PNG files")
    parser.add_argument("--steps", type=int, default=150, help="NodeTokenizer pretraining steps")
    parser.add_argument("--model", help="a Hugging Face decoder (hub id or folder); default: offline tiny Llama")
    parser.add_argument("--quick", action="store_true", help="20 pretraining steps and a one-hop ego graph")
    args = parser.parse_args(argv)
    steps, hops = (20, 1) if args.quick else (args.steps, 2)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)

    # 1. anchors and distances on the karate club
    karate = nx.karate_club_graph()
    anchors = select_anchors(karate, radius=1, coverage=1.0).tolist()
    distances = anchor_distances(karate, anchors)
    print(f"karate club: {len(karate)} members, anchors {anchors}, "
          f"1-hop coverage {anchor_coverage(karate, anchors, 1):.2f}")
    show_graph(karate, anchors, distances, os.path.join(args.out, "graph_anchors.png"), radius=1,
               title="karate club: NT-LLM anchors covering every member within 1 hop")

    # 2. node tokens, pretrained to keep the order of hop distances, inside an NT-LLM prompt
    instruction, question = "You see two club members .", "Are they in the same faction ?"
    miserables = nx.les_miserables_graph()
    texts = {name: f"{name} is a character of Les Misérables ." for name in miserables}
    centre = "Fantine"
    query = f"Who is close to {centre} ?"
    prefix = "Answer from the characters ."
    lm, tok = load_model(args.model, [instruction, question, query, prefix] + list(texts.values()))
    hidden = lm.model.get_input_embeddings().weight.shape[1]
    node_tokenizer = NodeTokenizer(len(anchors), hidden_size=hidden, tokens_per_node=1, embed_dim=32)
    report = node_tokenizer.fit(karate, distances, steps=steps, batch_size=512, num_sources=24, progress=False)
    print(f"NodeTokenizer: {report}")
    with torch.no_grad():
        soft = node_tokenizer(distances[[0, 33]])
    plan = node_token_plan(tok, soft, prefix=instruction, query=question, names=["member0", "member33"])
    print(plan.describe())
    plan.show(os.path.join(args.out, "graph_node_tokens.png"), title="NT-LLM prompt: soft node tokens")
    print(f"next token after the NT-LLM prompt: {next_word(lm, tok, plan)!r}")

    # 3. a two-hop Graph-KV ego graph over Les Misérables
    ego = ego_graph_plan(tok, miserables, texts, centre, query, hops=hops, prefix=prefix, max_nodes=60)
    rounds = sorted({s.start for s in ego if s.role in ("source", "target")})
    print(f"Graph-KV ego graph of {centre}: {ego.num_segments} segments, {len(ego)} tokens, chunk starts {rounds}")
    ego.show(os.path.join(args.out, "graph_ego_kv.png"), title=f"Graph-KV: {hops}-hop ego graph of {centre}")
    print(f"next token after the Graph-KV prompt: {next_word(lm, tok, ego)!r}")
    for name in ("graph_anchors.png", "graph_node_tokens.png", "graph_ego_kv.png"):
        print("wrote", os.path.join(args.out, name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
