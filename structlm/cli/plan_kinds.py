"""The kinds of ``structlm plan KIND INPUT...``: one small builder per front-end.

A kind is a name, a help line, a function that adds its arguments, and a function ``build(args) -> (plan,
notes)`` that reads the inputs and calls the front-end (``notes`` are extra summary lines). Add a kind by
writing those two functions and one :func:`kind` call here (or in another module listed in ``KIND_MODULES``);
``structlm plan`` gives every kind its own ``--help``, the common options (``-o``, ``--png``, ``--mask``,
``--tokenizer``) and the one-line error handling.
"""
from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from structlm.cli.inputs import (GRAPH_FORMATS, find_node, load_tokenizer, node_text, read_contexts, read_graph,
                                 read_text)

__all__ = ["Kind", "KINDS", "KIND_MODULES", "kind", "all_kinds"]


@dataclass(frozen=True)
class Kind:
    """One ``structlm plan`` kind: ``arguments(parser)`` adds its options, ``build(args)`` returns (plan, notes)."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    build: Callable[[argparse.Namespace], tuple]
    description: str = ""


KINDS: dict[str, Kind] = {}
#: Modules that register more kinds when imported (e.g. ``"structlm.cli.plan_candidates"``).
KIND_MODULES: list[str] = ["structlm.cli.plan_stream", "structlm.cli.plan_candidates"]


def kind(name: str, help: str, arguments, build, description: str = "") -> Kind:
    """Register a kind (a later registration of the same name replaces it)."""
    KINDS[name] = Kind(name, help, arguments, build, description or help)
    return KINDS[name]


def all_kinds() -> dict[str, Kind]:
    """Every registered kind, after importing :data:`KIND_MODULES`."""
    for module in KIND_MODULES:
        importlib.import_module(module)
    return KINDS


# ------------------------------------------------------------------------------------------------- graph
GRAPH_MODES = ("node-tokens", "ego", "k-hop")


def _graph_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="GRAPH", help=GRAPH_FORMATS)
    parser.add_argument("--mode", choices=GRAPH_MODES, default="node-tokens",
                        help="node-tokens: NT-LLM soft node tokens inside a prompt; ego: Graph-KV plan of a node's "
                        "neighbourhood (--center); k-hop: Graph-KV rings around --targets (default: node-tokens)")
    parser.add_argument("--directed", action="store_true", help="read an edge list as arcs (source target)")
    parser.add_argument("--nodes", nargs="+", metavar="NODE", help="node-tokens: the nodes to put in the prompt "
                        "(default: the first two)")
    parser.add_argument("--radius", type=int, default=1, help="node-tokens: anchor ball radius c in hops")
    parser.add_argument("--coverage", type=float, default=0.95, help="node-tokens: share of nodes the anchors cover")
    parser.add_argument("--hidden", type=int, default=32, help="node-tokens: width of a soft token (the model's "
                        "hidden size)")
    parser.add_argument("--fit-steps", type=int, default=100, help="node-tokens: rank-preserving pretraining steps "
                        "of the distance encoder (0: none)")
    parser.add_argument("--center", metavar="NODE", help="ego: the centre node")
    parser.add_argument("--targets", nargs="+", metavar="NODE", help="k-hop: the target nodes")
    parser.add_argument("--hops", type=int, default=None, help="ego / k-hop: rings around the centre (default 1 for "
                        "ego, 2 for k-hop)")
    parser.add_argument("--max-nodes", type=int, default=200, help="ego / k-hop: refuse larger neighbourhoods")
    parser.add_argument("--texts", metavar="JSON", help="ego / k-hop: a JSON object node id -> text (default: the "
                        "node's text/label attribute, else 'node <id>')")
    parser.add_argument("--prefix", default="Answer from the graph .", help="instruction before the graph")
    parser.add_argument("--text", default="", help="node-tokens: text after the node tokens")
    parser.add_argument("--query", default="How are these nodes related ?", help="the question")


def _build_graph(args: argparse.Namespace):
    import json

    graph = read_graph(args.input, directed=args.directed)
    notes = [f"graph: {graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges"]
    if args.mode == "node-tokens":
        return _node_token_plan(args, graph, notes)
    texts = None
    if args.texts:
        try:
            texts = json.loads(read_text(args.texts))
        except json.JSONDecodeError as error:
            raise ValueError(f"{args.texts}: not valid JSON ({error.msg} at line {error.lineno})") from None
        if not isinstance(texts, dict):
            raise ValueError(f"{args.texts}: expected a JSON object node id -> text")
        texts = {str(k): v for k, v in texts.items()}
    node_texts = {node: node_text(graph, node, texts) for node in graph.nodes()}
    tokenizer = load_tokenizer(args.tokenizer, list(node_texts.values()) + [args.prefix, args.query])
    from structlm.graph.plans import ego_graph_plan, graph_kv_plan

    if args.mode == "ego":
        if not args.center:
            raise ValueError("--mode ego needs --center NODE")
        center = find_node(graph, args.center)
        plan = ego_graph_plan(tokenizer, graph, node_texts, center, args.query, hops=args.hops or 1,
                              prefix=args.prefix, max_nodes=args.max_nodes)
        notes.append(f"Graph-KV ego graph of {center!r}, {args.hops or 1} hop(s)")
    else:
        if not args.targets:
            raise ValueError("--mode k-hop needs --targets NODE [NODE ...]")
        targets = [find_node(graph, t) for t in args.targets]
        plan = graph_kv_plan(tokenizer, graph, node_texts, args.query, targets=targets, hops=args.hops or 2,
                             prefix=args.prefix, max_nodes=args.max_nodes)
        notes.append(f"Graph-KV rings around {targets}, {args.hops or 2} hop(s)")
    starts = sorted({s.start for s in plan if s.role in ("source", "target")})
    notes.append(f"chunk start positions (one per round): {starts}")
    return plan, notes


def _node_token_plan(args: argparse.Namespace, graph, notes: list[str]):
    import torch

    from structlm.graph import anchor_distances, select_anchors
    from structlm.graph.plans import node_token_plan
    from structlm.graph.tokens import NodeTokenizer

    nodes = [find_node(graph, n) for n in args.nodes] if args.nodes else list(graph.nodes())[:2]
    anchors = select_anchors(graph, radius=args.radius, coverage=args.coverage)
    anchors = anchors.tolist() if hasattr(anchors, "tolist") else list(anchors)
    distances = anchor_distances(graph, anchors)
    torch.manual_seed(0)
    encoder = NodeTokenizer(len(anchors), hidden_size=args.hidden, embed_dim=32)
    if args.fit_steps > 0 and graph.number_of_nodes() >= 3:
        report = encoder.fit(graph, distances, steps=args.fit_steps, batch_size=256, num_sources=16,
                             progress=False)
        notes.append(f"NodeTokenizer pretraining: {report}")
    order = {node: i for i, node in enumerate(graph.nodes())}
    with torch.no_grad():
        soft = encoder(distances[[order[n] for n in nodes]])
    tokenizer = load_tokenizer(args.tokenizer, [args.prefix, args.text, args.query])
    plan = node_token_plan(tokenizer, soft, prefix=args.prefix, text=args.text, query=args.query,
                           names=[f"node:{n}" for n in nodes])
    notes.append(f"{len(anchors)} anchors (radius {args.radius}): {anchors[:12]}{' ...' if len(anchors) > 12 else ''}")
    notes.append(f"soft tokens {args.hidden} wide; the projector is untrained: train it with (or in front of) the LLM")
    return plan, notes


kind("graph", "a graph file -> NT-LLM node-token prompt or Graph-KV ego / k-hop plan", _graph_arguments,
     _build_graph, description="Read an edge list, GraphML or GML file and build an NT-LLM prompt with soft node "
     "tokens (anchors by greedy c-hop coverage, distances, a NodeTokenizer) or a Graph-KV plan over the node texts.")


# ------------------------------------------------------------------------------------------------- code
def _code_arguments(parser: argparse.ArgumentParser) -> None:
    from structlm.code import UNIXCODER_MODES

    parser.add_argument("input", metavar="SOURCE", help="a source file (language from its extension or --language)")
    parser.add_argument("--mode", choices=UNIXCODER_MODES, default="encoder-only", help="UniXcoder mode")
    parser.add_argument("--language", help="language of the file (default: from the extension)")
    parser.add_argument("--function", metavar="NAME", help="only this function (default: the whole file)")
    parser.add_argument("--ast", choices=["none", "paper", "release"], default="none",
                        help="feed UniXcoder's flattened AST (paper or release style) instead of plain code")
    parser.add_argument("--target", help="encoder-decoder: the target text (e.g. a summary)")
    parser.add_argument("--max-length", type=int, default=1024, help="UniXcoder's truncation limit")


def _language_of(path: str, name: str | None) -> str:
    from structlm.code import language_spec, supported_languages

    if name:
        return language_spec(name).name
    suffix = Path(path).suffix
    for language in supported_languages():
        if suffix and suffix in language_spec(language).extensions:
            return language
    raise ValueError(f"cannot tell the language of {path} from its extension; pass --language "
                     f"(one of {', '.join(supported_languages())})")


def _build_code(args: argparse.Namespace):
    from structlm.code import add_unixcoder_tokens, functions, parse, unixcoder_plan, unixcoder_sequence

    source = read_text(args.input)
    language = _language_of(args.input, args.language)
    notes = [f"{args.input}: {language}, {len(source.splitlines())} lines"]
    if args.function or args.ast != "none":
        tree = parse(source, language)
        if args.function:
            found = [f for f in functions(tree) if _function_name(f) == args.function]
            if not found:
                names = sorted({_function_name(f) for f in functions(tree)} - {None})
                raise ValueError(f"no function {args.function!r} in {args.input} (found: {', '.join(names[:12])})")
            source = _function_source(tree.source, found[0])
            tree = parse(source, language)
            notes.append(f"function {args.function}: {len(source.splitlines())} lines")
    tokenizer = load_tokenizer(args.tokenizer, [source], default="minilm")
    if add_unixcoder_tokens(tokenizer):
        notes.append(f"added UniXcoder's mode tokens to the tokenizer (vocabulary now {len(tokenizer)}; resize the "
                     "model's embeddings, or use a UniXcoder checkpoint)")
    code = unixcoder_sequence(tree, args.ast, tokenizer=tokenizer) if args.ast != "none" else source
    plan = unixcoder_plan(tokenizer, code, mode=args.mode, target=args.target, max_length=args.max_length)
    total = len(code) if isinstance(code, list) else len(tokenizer.tokenize(code))
    kept = len(plan["source"]) - (4 if args.mode == "encoder-only" else 3 if args.mode == "decoder-only" else 4)
    cut = f", cut from {total} (UniXcoder keeps the {'end' if args.mode == 'decoder-only' else 'start'})" \
        if kept < total else ""
    notes.append(f"UniXcoder {args.mode}: {kept} code tokens in the source segment{cut}; max_length {args.max_length}")
    return plan, notes


def _function_name(node) -> str | None:
    for child in node.children:
        if child.type in ("identifier", "name", "property_identifier", "field_identifier") and child.text:
            return child.text
    return None


def _function_source(data: bytes, node) -> str:
    """The function's lines, dedented (a method parses on its own)."""
    import textwrap

    start = data.rfind(b"\n", 0, node.start_byte) + 1
    return textwrap.dedent(data[start:node.end_byte].decode("utf-8", errors="replace"))


kind("code", "a source file -> UniXcoder encoder-only / decoder-only / encoder-decoder plan", _code_arguments,
     _build_code, description="Read a source file (or one function of it) and build UniXcoder's input for one "
     "mode: plain code as its downstream tasks use, or the flattened AST (paper or release style).")


# ------------------------------------------------------------------------------------------------- rag
RAG_LAYOUTS = ("parallel", "sequential", "graph-kv-top1", "graph-kv-full")


def _rag_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="CONTEXTS", help="JSON (a list, or {'contexts': [...], 'question': ...}), "
                        "JSONL (one context per line) or text (contexts separated by blank lines)")
    parser.add_argument("--question", help="the question (default: the file's 'question')")
    parser.add_argument("--layout", choices=RAG_LAYOUTS, default="parallel",
                        help="parallel: APE / PCW; sequential: plain concatenation; graph-kv-top1 / -full: Graph-KV")
    parser.add_argument("--prefix", help="shared prefix / instruction (default: the file's 'prefix', else "
                        "'Answer the question using the documents .')")


def _build_rag(args: argparse.Namespace):
    from structlm import rag

    contexts, question, prefix = read_contexts(args.input)
    question = args.question or question
    if not question:
        raise ValueError(f"{args.input} has no question: pass --question TEXT")
    prefix = args.prefix if args.prefix is not None else (prefix or "Answer the question using the documents .")
    tokenizer = load_tokenizer(args.tokenizer, contexts + [question, prefix])
    if args.layout == "parallel":
        plan = rag.parallel(tokenizer, contexts, question, prefix=prefix)
    elif args.layout == "sequential":
        plan = rag.sequential(tokenizer, contexts, question, prefix=prefix)
    else:
        top_m = "full" if args.layout == "graph-kv-full" else 1
        if top_m == 1 and len(contexts) < 2:
            raise ValueError("graph-kv-top1 needs at least two contexts (one source, one target)")
        plan = rag.graph_kv_rag(tokenizer, contexts, question, top_m=top_m, prefix=prefix)
    used = int(plan.position_ids.max()) + 1
    notes = [f"{len(contexts)} contexts, {args.layout}: {len(plan)} tokens at {used} positions"]
    return plan, notes


kind("rag", "contexts and a question -> APE parallel, sequential or Graph-KV plan", _rag_arguments, _build_rag,
     description="Read retrieved contexts (JSON, JSONL or text) and a question, and lay them out in parallel (APE / "
     "PCW: contexts share one position range), sequentially, or as Graph-KV (top-1 sources or full).")
