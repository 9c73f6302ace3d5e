"""``structlm demo``: a short tour of every part, offline, with the checks that make each step trustworthy.

Sits on top (like the CLI): it uses the core, the front-ends and the runtime. Each step prints what it built and
one measured fact — an exactness difference, cache hits, a coverage ratio, a round trip.
"""
from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from typing import Callable

__all__ = ["run_demo"]

CONTEXTS = [
    "the amazon river carries more water than any other river on earth",
    "lake baikal in siberia is the deepest lake in the world",
    "mount kilimanjaro in tanzania is the highest mountain in africa",
]
QUESTIONS = ["which lake is the deepest", "which river carries the most water"]


def _plan_step(say: Callable[[str], None], out: Path | None) -> None:
    from structlm.testing import example_plan

    plan = example_plan()
    say(f"{plan!r}\n{plan.describe()}\nschedule (KV-reuse order): {plan.schedule()}")
    tiles = plan.block_mask(block_size=4)
    say(f"BlockMask with 4-token tiles: {tiles.sparsity():.0f}% of tiles skipped")
    if out is not None:
        try:
            plan.show(str(out / "plan.png"))
            say(f"picture: {out / 'plan.png'}")
        except ImportError as error:
            say(f"(no picture: {error})")


def _rag_step(say: Callable[[str], None]) -> None:
    from structlm import rag
    from structlm.hf import APE, StructuredLM
    from structlm.testing import demo_tokenizer, tiny_llama

    tokenizer = demo_tokenizer(CONTEXTS + QUESTIONS + ["answer from the documents"])
    lm = StructuredLM(tiny_llama(len(tokenizer)), tokenizer=tokenizer)
    first = rag.parallel(tokenizer, CONTEXTS, QUESTIONS[0], prefix="answer from the documents")
    starts = sorted({first[name].start for name in first.names if name.startswith("context")})
    say(f"{first!r}; every context starts at position {starts}, the query at {first['query'].start}")
    reuse = lm.forward(first, backend="reuse").logits
    dense = lm.forward(first, backend="dense").logits
    say(f"reuse vs dense backend, max |logit difference|: {(reuse - dense).abs().max().item():.2e}")
    second = rag.parallel(tokenizer, list(reversed(CONTEXTS)), QUESTIONS[1], prefix="answer from the documents")
    lm.cache.hits = lm.cache.misses = 0
    lm.forward(second, backend="reuse")
    say(f"second question, contexts reordered: {lm.cache.hits} segments from the cache, {lm.cache.misses} encoded")
    plain = lm.forward(second, backend="reuse").logits
    neutral = lm.forward(second, backend="dense", attention=APE(temperature=1.0, scale=1.0)).logits
    say(f"APE at T = S = 1 vs plain parallel attention: {(plain - neutral).abs().max().item():.2e}")
    tokens = lm.generate(second, max_new_tokens=5, attention=APE(0.9, 0.9), eos_token_id=[])
    say(f"generated with APE(0.9, 0.9) on the random tiny model: {tokenizer.decode(tokens[0])!r}")


def _graph_step(say: Callable[[str], None]) -> None:
    import networkx as nx

    from structlm.graph import anchor_coverage, anchor_distances, select_anchors

    graph = nx.karate_club_graph()
    anchors = select_anchors(graph, radius=2, coverage=1.0)
    distances = anchor_distances(graph, anchors)
    oracle = nx.single_source_shortest_path_length(graph, anchors[0])
    same = all(distances[v, 0] == oracle[v] for v in graph.nodes)
    say(f"karate club ({graph.number_of_nodes()} nodes): anchors {[int(a) for a in anchors]} cover "
        f"{anchor_coverage(graph, anchors, radius=2):.0%} within 2 hops; distance matrix {distances.shape}, "
        f"equal to networkx shortest paths: {same}")


def _code_step(say: Callable[[str], None]) -> None:
    import json.decoder

    from structlm.code import (ast_tuple, constituents, from_unixcoder_sequence, gold_constituents, parse,
                               precision_recall_f1, tree_from_tuple, unixcoder_sequence)

    source = textwrap.dedent(inspect.getsource(json.decoder.py_scanstring))
    tree = parse(source, "python", strict=True)
    paper = unixcoder_sequence(tree, "paper")
    release = unixcoder_sequence(tree, "release")
    back = from_unixcoder_sequence(paper)
    say(f"json.decoder.py_scanstring: {len(paper)} UniXcoder tokens (paper style), {len(release)} (release style); "
        f"paper round trip gives the tree back: {back.signature() == tree.root.signature()}")
    t = ast_tuple(tree)
    rebuilt = tree_from_tuple(t.d, t.c, t.u, t.tokens)
    f1 = precision_recall_f1(gold_constituents(tree), constituents(rebuilt))[2]
    say(f"AST-Probe tuple: {len(t.tokens)} tokens; first (token, d, c, u): "
        f"{list(zip(t.tokens[:3], t.d[:3], t.c[:3], t.u[:3]))}; (d, c, u) -> tree constituent F1 = {f1:.2f}")


def run_demo(out: str | None = None, say: Callable[[str], None] = print) -> None:
    """Run the tour; with ``out`` a folder, also write a picture of the demo plan."""
    folder = Path(out) if out else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    steps = [("1. plans", lambda: _plan_step(say, folder)), ("2. RAG: parallel encoding, cache, APE", lambda: _rag_step(say)),
             ("3. graphs: NT-LLM anchors", lambda: _graph_step(say)),
             ("4. code: UniXcoder and AST-Probe", lambda: _code_step(say))]
    for title, step in steps:
        say(f"\n== {title}")
        step()
