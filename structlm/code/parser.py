"""Code front-end: tree-sitter parsing into a small, exact tree.

``parse(source, language)`` turns source code into a :class:`CodeTree` whose leaves carry their text sliced
by **byte** offsets (tree-sitter columns are byte offsets; slicing ``str`` lines with them, as UniXcoder's
released preprocessing does, garbles non-ASCII code). Per-language facts (grammar wheel, string-literal
node types kept whole as leaves, comment node types) live in one small JSON spec per language under
``parsers/``.

Users import everything from :mod:`structlm.code`, which re-exports this module, the UniXcoder mapping
(:mod:`structlm.code.unixcoder`) and AST-Probe's (d, c, u) (:mod:`structlm.code.ast`).
"""
from __future__ import annotations

import functools
import gc
import importlib
import json
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from structlm.errors import CodeSyntaxError, UnknownLanguageError

# One JSON spec per language: the repository's top-level ``parsers/`` folder, shipped as package data here.
SPEC_DIR = Path(__file__).resolve().parent / "languages"

__all__ = [
    "LanguageSpec",
    "Node",
    "CodeTree",
    "SyntaxIssue",
    "CodeSyntaxError",
    "CodeSyntaxWarning",
    "UnknownLanguageError",
    "supported_languages",
    "language_spec",
    "parse",
    "functions",
    "strip_comments",
    "deep_recursion",
    "tree_walk",
    "root_node",
]


class CodeSyntaxWarning(UserWarning):
    """A non-strict parse found ERROR or MISSING nodes (the tree is still returned, with ``tree.errors``)."""


@dataclass(frozen=True)
class LanguageSpec:
    """One language: where its grammar lives and which node types get special treatment."""

    name: str
    package: str
    module: str
    entry: str
    grammar_version: str
    extensions: tuple[str, ...]
    aliases: tuple[str, ...]
    leaf_types: frozenset[str]
    comment_types: frozenset[str]
    function_types: frozenset[str]

    @classmethod
    def from_dict(cls, data: dict) -> "LanguageSpec":
        return cls(
            name=data["name"],
            package=data["package"],
            module=data["module"],
            entry=data["entry"],
            grammar_version=data["grammar_version"],
            extensions=tuple(data.get("extensions", ())),
            aliases=tuple(data.get("aliases", ())),
            leaf_types=frozenset(data.get("leaf_types", ())),
            comment_types=frozenset(data.get("comment_types", ())),
            function_types=frozenset(data.get("function_types", ())),
        )

    def language(self):
        """The tree-sitter ``Language`` (imported lazily: only the grammars you use get loaded)."""
        return _ts_language(self.name)

    def installed_version(self) -> str | None:
        """Version of the installed grammar wheel (compare with ``grammar_version``)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.package)
        except PackageNotFoundError:
            return None


@functools.lru_cache(maxsize=None)
def _specs() -> dict[str, LanguageSpec]:
    specs = {}
    paths = sorted(SPEC_DIR.glob("*.json"))
    for path in paths:
        spec = LanguageSpec.from_dict(json.loads(path.read_text(encoding="utf-8")))
        specs[spec.name] = spec
    return specs


def supported_languages() -> list[str]:
    """Names of the languages with a spec under ``parsers/``."""
    return sorted(_specs())


def language_spec(language: str | LanguageSpec) -> LanguageSpec:
    """Look a language up by name or alias (case-insensitive); unknown names list the supported ones."""
    if isinstance(language, LanguageSpec):
        return language
    specs = _specs()
    key = str(language).strip().lower()
    if key in specs:
        return specs[key]
    for spec in specs.values():
        if key in spec.aliases:
            return spec
    raise UnknownLanguageError(
        f"unknown language {language!r}; supported languages: {', '.join(supported_languages())}"
    )


@functools.lru_cache(maxsize=None)
def _ts_language(name: str):
    from tree_sitter import Language

    spec = _specs()[name]
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"language {name!r} needs the grammar wheel: pip install {spec.package}") from exc
    return Language(getattr(module, spec.entry)())


@functools.lru_cache(maxsize=None)
def _ts_parser(name: str):
    from tree_sitter import Parser

    return Parser(_ts_language(name))


class Node:
    """A syntax-tree node. Leaves have ``text`` (a str) and no children; non-terminals have children.

    Leaves are tree-sitter's childless nodes (identifiers, keywords, punctuation — named or not) plus the
    spec's ``leaf_types`` (string literals) and ``comment_types``, kept whole. ``comment`` marks comments.
    Byte offsets index ``CodeTree.source`` (``-1`` for trees rebuilt from a sequence).
    """

    __slots__ = ("type", "children", "text", "start_byte", "end_byte", "comment", "clean")

    def __init__(
        self,
        type: str,
        children: list["Node"] | None = None,
        text: str | None = None,
        start_byte: int = -1,
        end_byte: int = -1,
        comment: bool = False,
        clean: bool = False,
    ) -> None:
        self.type = type
        self.children = children if children is not None else []
        self.text = text
        self.start_byte = start_byte
        self.end_byte = end_byte
        self.comment = comment
        self.clean = clean  # True: no comment anywhere below (set by parse; lets walks skip filtering)

    @property
    def is_leaf(self) -> bool:
        return self.text is not None

    def leaves(self) -> Iterator["Node"]:
        """Leaves in source order (iterative: deep trees do not hit the recursion limit)."""
        stack = [self]
        while stack:
            node = stack.pop()
            if node.text is not None:
                yield node
            else:
                stack.extend(reversed(node.children))

    def iter(self) -> Iterator["Node"]:
        """All nodes, pre-order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def signature(self) -> list[tuple]:
        """Flat pre-order encoding: ``("node", type, n_children)`` for non-terminals, ``("leaf", text)``.

        Two trees with equal signatures have the same shape, non-terminal types and leaf texts — exactly
        what a UniXcoder sequence preserves (it does not carry the types of leaves or byte offsets). Flat,
        so comparing trees of any depth needs no recursion.
        """
        out: list[tuple] = []
        stack = [self]
        while stack:
            node = stack.pop()
            if node.text is not None:
                out.append(("leaf", node.text))
            else:
                out.append(("node", node.type, len(node.children)))
                stack.extend(reversed(node.children))
        return out

    def sexp(self) -> str:
        """A readable S-expression (leaf texts quoted)."""
        if self.text is not None:
            return repr(self.text)
        return "(" + " ".join([self.type, *(c.sexp() for c in self.children)]) + ")"

    def __repr__(self) -> str:
        if self.text is not None:
            return f"Node({self.type!r}, text={self.text!r})"
        return f"Node({self.type!r}, {len(self.children)} children)"


@dataclass(frozen=True)
class SyntaxIssue:
    """One ERROR or MISSING node: 1-based line, 1-based character column, and the offending text."""

    kind: str  # "ERROR" or "MISSING"
    line: int
    column: int
    text: str
    start_byte: int

    def describe(self) -> str:
        if self.kind == "MISSING":
            return f"missing {self.text!r} at line {self.line}, column {self.column}"
        snippet = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f"unexpected {snippet!r} at line {self.line}, column {self.column}"


@dataclass
class CodeTree:
    """A parsed source: the tree, the exact source bytes, the language spec, and any syntax issues."""

    root: Node
    source: bytes
    spec: LanguageSpec
    errors: list[SyntaxIssue] = field(default_factory=list)
    ts_tree: object = field(default=None, repr=False)

    @property
    def language(self) -> str:
        return self.spec.name

    @property
    def has_errors(self) -> bool:
        return bool(self.errors)

    def leaves(self) -> list[Node]:
        return list(self.root.leaves())

    def text(self, node: Node) -> str:
        """The exact source text of any node (byte-sliced)."""
        return self.source[node.start_byte : node.end_byte].decode("utf-8", errors="surrogateescape")


def root_node(tree: "CodeTree | Node") -> Node:
    """The root Node of a parsed tree (or the node itself): every tree function takes either."""
    if isinstance(tree, CodeTree):
        return tree.root
    if isinstance(tree, Node):
        return tree
    raise TypeError(f"expected a CodeTree or Node, got {type(tree).__name__}")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def _convert(ts_root, source: bytes, spec: LanguageSpec) -> Node:
    """tree-sitter tree -> Node tree.

    Recursion over ``node.children`` (one C call per non-terminal) measured 2.3x faster than a TreeCursor
    walk; :func:`tree_walk` raises the recursion limit and pauses the garbage collector meanwhile.
    """
    comment_types = spec.comment_types
    whole = spec.leaf_types | comment_types  # string literals and comments are single leaves

    seen = [0]  # comments converted so far: a subtree is clean when the count did not move under it

    def convert(ts) -> Node:
        kind = ts.type
        kids = ts.children
        if not kids or kind in whole:
            start, end = ts.start_byte, ts.end_byte
            if kind in comment_types:
                seen[0] += 1
                return Node(kind, None, source[start:end].decode("utf-8", "surrogateescape"), start, end, True)
            return Node(kind, None, source[start:end].decode("utf-8", "surrogateescape"), start, end, False, True)
        before = seen[0]
        children = [convert(k) for k in kids]
        return Node(kind, children, None, ts.start_byte, ts.end_byte, kind in comment_types, seen[0] == before)

    with tree_walk():
        return convert(ts_root)


def _char_column(source: bytes, start_byte: int, row_start: int) -> int:
    return len(_decode(source[row_start:start_byte])) + 1


def _syntax_issues(ts_root, source: bytes) -> list[SyntaxIssue]:
    issues: list[SyntaxIssue] = []
    stack = [ts_root]
    while stack:
        node = stack.pop()
        if node.is_missing or node.type == "ERROR" or node.is_error:
            row, col = node.start_point
            row_start = node.start_byte - col
            kind = "MISSING" if node.is_missing else "ERROR"
            text = node.type if node.is_missing else _decode(source[node.start_byte : node.end_byte])
            issues.append(SyntaxIssue(kind, row + 1, _char_column(source, node.start_byte, row_start), text, node.start_byte))
            if kind == "ERROR":
                # also report MISSING nodes nested in an ERROR, but not nested ERRORs
                stack.extend(c for c in node.children if c.has_error and c.is_missing)
                continue
        if node.has_error:
            stack.extend(c for c in node.children if c.has_error)
    issues.sort(key=lambda i: (i.start_byte, i.kind))
    return issues


def parse(source: str | bytes, language: str | LanguageSpec, strict: bool = False) -> CodeTree:
    """Parse ``source`` with the tree-sitter grammar of ``language``.

    ``strict=True`` raises :class:`CodeSyntaxError` (line and column of the first problem, all problems in
    ``.issues``) when tree-sitter had to recover (ERROR or MISSING nodes). Otherwise the recovered tree is
    returned with the problems in ``tree.errors`` and a :class:`CodeSyntaxWarning`.
    """
    spec, data, ts_tree, errors = _parse_ts(source, language, strict, stacklevel=3)
    root = _convert(ts_tree.root_node, data, spec)
    return CodeTree(root=root, source=data, spec=spec, errors=errors, ts_tree=ts_tree)


def _parse_ts(source: str | bytes, language: str | LanguageSpec, strict: bool, stacklevel: int = 2):
    """The tree-sitter part of :func:`parse`: (spec, source bytes, tree-sitter tree, syntax issues)."""
    spec = language_spec(language)
    if isinstance(source, str):
        data = source.encode("utf-8", errors="surrogateescape")
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        raise TypeError(f"source must be str or bytes, got {type(source).__name__}")
    ts_tree = _ts_parser(spec.name).parse(data)
    ts_root = ts_tree.root_node
    errors = _syntax_issues(ts_root, data) if ts_root.has_error else []
    if errors:
        summary = "; ".join(issue.describe() for issue in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        message = f"{spec.name} syntax error: {summary}{more}"
        if strict:
            raise CodeSyntaxError(message, errors)
        warnings.warn(message, CodeSyntaxWarning, stacklevel=stacklevel)
    return spec, data, ts_tree, errors


def functions(tree: CodeTree) -> list[Node]:
    """The outermost function-like nodes (spec ``function_types``), in source order."""
    kinds = tree.spec.function_types
    found: list[Node] = []
    stack = [tree.root]
    while stack:
        node = stack.pop()
        if node.type in kinds and node.text is None:
            found.append(node)
            continue
        stack.extend(reversed(node.children))
    return found


def _starts_line(data: bytes, start: int) -> bool:
    """Only blanks lie between the start of the line and byte ``start``."""
    return not data[data.rfind(b"\n", 0, start) + 1 : start].strip()


def _docstring_nodes(tree: CodeTree) -> list[Node]:
    """Python docstrings: a string statement first in a module, class or function body, on a line of its own.

    A docstring on the header line (``def f(): "doc"``) is the whole body and stays: removing it would leave an
    empty block (an empty ``''`` token in the AST tuple). AST-Probe's tokenize-based pass keeps it too.
    """
    found = []
    for node in tree.root.iter():
        if node.type not in ("module", "block") or node.text is not None:
            continue
        body = [c for c in node.children if not c.comment]
        if body and body[0].type == "expression_statement" and len(body[0].children) == 1:
            if body[0].children[0].type in ("string", "concatenated_string") and _starts_line(
                tree.source, body[0].start_byte
            ):
                found.append(body[0])
    return found


def strip_comments(source: str, language: str | LanguageSpec, docstrings: bool = True) -> str:
    """Remove comments (and Python docstrings) by their byte ranges, join backslash-continued lines, then drop
    blank lines.

    Done on the tree instead of with regexes (which break on string literals that look like comments). A line
    continuation (``\\`` at a line's end, outside strings) becomes one space, so the continued line is joined
    and no ``line_continuation`` leaf reaches the AST tuple. The deliberate differences from AST-Probe's
    tokenize-based pass are listed in docs/code.md. Raises :class:`CodeSyntaxError` on code that does not parse.
    """
    tree = parse(source, language, strict=True)
    cuts = [(n.start_byte, n.end_byte, b"") for n in tree.root.iter() if n.comment]
    cuts += [(n.start_byte, n.end_byte, b" ") for n in tree.root.leaves() if n.type == "line_continuation"]
    if docstrings and tree.spec.name == "python":
        cuts += [(n.start_byte, n.end_byte, b"") for n in _docstring_nodes(tree)]
    data = tree.source
    pieces, last = [], 0
    for start, end, replacement in sorted(cuts):
        if start < last:
            continue
        pieces += [data[last:start], replacement]
        last = end
    pieces.append(data[last:])
    text = _decode(b"".join(pieces))
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


@contextmanager
def tree_walk(limit: int = 100_000):
    """For walks over big trees: a higher recursion limit (deep code) and the cyclic garbage collector
    paused (the walks only allocate acyclic lists and tuples; with it on, each gen-2 pass rescans the
    whole tree). Both are restored afterwards."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with deep_recursion(limit):
            yield
    finally:
        if gc_was_enabled:
            gc.enable()


@contextmanager
def deep_recursion(limit: int = 100_000):
    """Raise the recursion limit for tree algorithms on deeply nested code (restored afterwards)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)
