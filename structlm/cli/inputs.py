"""Reading the command's input files (graphs, context lists, source files, tokenizers) and writing its outputs.

Why one module: ``structlm plan``, ``structlm graph`` and ``structlm rag`` read the same kinds of files, and a
user mistake in any of them (a missing file, a malformed line, an unknown node) must end in the same kind of
one-line message. Every reader here raises ``ValueError`` or ``OSError`` with the file (and line) named;
``structlm.cli.main`` prints it on one line and exits 2.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Hashable, Iterable

from structlm.files import write_atomically

__all__ = ["write_atomically", "read_text", "read_graph", "node_text", "find_node", "read_contexts", "load_tokenizer",
           "read_candidates", "GRAPH_FORMATS", "CANDIDATE_FORMATS"]

GRAPH_FORMATS = "an edge list (two node ids per line, '#' comments), GraphML (.graphml) or GML (.gml)"


def read_text(path: str | os.PathLike) -> str:
    """The file's text (UTF-8); a missing file or a folder is an ``OSError`` naming it."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None


def _node_id(word: str) -> Hashable:
    return int(word) if word.lstrip("-").isdigit() else word


def read_graph(path: str | os.PathLike, directed: bool = False):
    """A networkx graph from an edge list, GraphML (``.graphml``) or GML (``.gml``) file.

    Edge lists: two node ids per line (more columns are ignored), ``#`` starts a comment; ids made of digits
    become ints. GraphML and GML keep their node attributes (a ``text`` or ``label`` attribute is a node's text
    for Graph-KV plans) and their own directedness unless ``directed`` asks for arcs.
    """
    import networkx as nx

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".graphml", ".gml"):
        read_text(path)  # a missing file or a folder: the same message as every other reader
        reader = nx.read_graphml if suffix == ".graphml" else nx.read_gml
        try:
            graph = reader(path)
        except Exception as error:  # networkx and xml raise many types; each is a malformed file here
            raise ValueError(f"{path}: not a readable {suffix[1:].upper()} file ({_first_line(error)})") from None
        if directed and not graph.is_directed():
            graph = graph.to_directed()
        if graph.number_of_nodes() == 0:
            raise ValueError(f"{path}: the graph has no nodes")
        return graph
    pairs = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) < 2:
            raise ValueError(f"{path}:{number}: an edge needs two node ids, got {line.strip()!r} "
                             f"(the file should be {GRAPH_FORMATS})")
        pairs.append((_node_id(words[0]), _node_id(words[1])))
    if not pairs:
        raise ValueError(f"{path}: no edges found (the file should be {GRAPH_FORMATS})")
    graph = nx.DiGraph() if directed else nx.Graph()
    graph.add_edges_from(pairs)
    return graph


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def find_node(graph, name: str) -> Hashable:
    """The graph's node called ``name`` on the command line (``"3"`` finds node ``3`` or ``"3"``)."""
    for candidate in (name, _node_id(name)):
        if candidate in graph:
            return candidate
    sample = ", ".join(str(n) for n in list(graph.nodes())[:5])
    raise ValueError(f"node {name!r} is not in the graph (nodes look like: {sample}, ...)")


def node_text(graph, node: Hashable, texts: dict | None = None) -> str:
    """A node's text: ``texts[node]``, else its ``text`` / ``label`` / ``name`` attribute, else ``node <id>``."""
    if texts is not None and str(node) in texts:
        return str(texts[str(node)])
    attributes = graph.nodes[node]
    for key in ("text", "label", "name", "title"):
        if isinstance(attributes.get(key), str) and attributes[key].strip():
            return attributes[key]
    return f"node {node}"


def _context_text(item: Any, where: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("text", "context", "contents", "content", "passage"):
            if isinstance(item.get(key), str):
                title = item.get("title")
                return f"{title}: {item[key]}" if isinstance(title, str) and title else item[key]
    raise ValueError(f"{where}: a context is a string or an object with a 'text' field, got {str(item)[:60]!r}")


def read_contexts(path: str | os.PathLike) -> tuple[list[str], str | None, str | None]:
    """``(contexts, question, prefix)`` from a JSON, JSONL or text file (question and prefix may be None).

    * ``.json``: a list of contexts, or an object ``{"contexts": [...], "question": ..., "prefix": ...}``
      (``documents`` / ``ctxs`` / ``passages`` also name the list);
    * ``.jsonl``: one context per line (a string or ``{"text": ..., "title": ...}``); a line
      ``{"question": ...}`` gives the question;
    * anything else: plain text, contexts separated by blank lines.
    A context is a string or an object with ``text`` (``context``, ``contents``), prefixed by its ``title``.
    """
    path = Path(path)
    text = read_text(path)
    question = prefix = None
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = _json(text, str(path), whole_file=True)
        if isinstance(data, dict):
            question, prefix = data.get("question", data.get("query")), data.get("prefix")
            items = next((data[k] for k in ("contexts", "documents", "ctxs", "passages") if k in data), None)
            if not isinstance(items, list):
                raise ValueError(f"{path}: a JSON object needs a 'contexts' list")
        elif isinstance(data, list):
            items = data
        else:
            raise ValueError(f"{path}: expected a list of contexts or an object with 'contexts'")
        contexts = [_context_text(item, f"{path}: context #{i}") for i, item in enumerate(items)]
    elif suffix == ".jsonl":
        contexts = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            item = _json(line, f"{path}:{number}")
            if isinstance(item, dict) and "question" in item and not any(k in item for k in ("text", "context")):
                question = item["question"]
                continue
            contexts.append(_context_text(item, f"{path}:{number}"))
    else:
        contexts = [block.strip() for block in text.split("\n\n") if block.strip()]
    if question is not None and not isinstance(question, str):
        raise ValueError(f"{path}: the question must be a string")
    if prefix is not None and not isinstance(prefix, str):
        raise ValueError(f"{path}: the prefix must be a string")
    if not contexts:
        raise ValueError(f"{path}: no contexts found")
    return contexts, question, prefix


CANDIDATE_FORMATS = ("a text file (one candidate per line), JSON (a list of strings, or {'candidates': [...]}) or "
                     "JSONL (one string or {'text': ...} per line)")


def _json(text: str, where: str, whole_file: bool = False):
    """Parsed JSON, or a ValueError naming the file (or ``file:line``) and what is wrong."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        at = f" at line {error.lineno}" if whole_file else ""
        raise ValueError(f"{where}: not valid JSON ({error.msg}{at})") from None


def read_candidates(path: str | os.PathLike) -> list[str]:
    """Candidates from a file: text (one per non-blank line), JSON (a list, or an object with ``candidates``) or
    JSONL (one string or ``{"text": ...}`` per line). A malformed or empty file is a ``ValueError`` naming it."""
    path = Path(path)
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = _json(text, str(path), whole_file=True)
        items = data.get("candidates") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValueError(f"{path}: expected a list of candidates or an object with a 'candidates' list")
        candidates = [_context_text(item, f"{path}: candidate #{i}") for i, item in enumerate(items)]
    elif suffix == ".jsonl":
        candidates = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                item = _json(line, f"{path}:{number}")
                candidates.append(_context_text(item, f"{path}:{number}"))
    else:
        candidates = [line.strip() for line in text.splitlines() if line.strip()]
    if not candidates:
        raise ValueError(f"{path}: no candidates found (the file should be {CANDIDATE_FORMATS})")
    return candidates


def load_tokenizer(name: str | None, texts: Iterable[str] = (), default: str = "words"):
    """A tokenizer by name: ``words`` (a word-level one built from ``texts``, offline), ``minilm`` (the packaged
    MiniLM-L6 WordPiece tokenizer, offline), or any Hugging Face hub id or local folder."""
    name = name or default
    if name == "words":
        from structlm.text import demo_tokenizer

        return demo_tokenizer(list(texts))
    if name == "minilm":
        from structlm.probe import load_packaged_minilm

        tokenizer, _ = load_packaged_minilm(with_model=False)
        return tokenizer
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as error:  # hub, files and config errors come in many types
        raise OSError(f"cannot load tokenizer {name!r}: {_first_line(error)} "
                      "(use 'words', 'minilm', a local folder or a hub id)") from None
