"""UniXcoder's AST flattening (as published and as released) and its three input modes as Plans.

Paper style (Guo et al. 2022, the mapping F): every non-terminal contributes a left marker, its children,
and a right marker, so the sequence is a bracket encoding and :func:`from_unixcoder_sequence` rebuilds the
tree exactly. Release style (the ``preprocess.py`` the authors shared in microsoft/CodeBERT#134): comments
dropped, string literals whole, and no markers around non-terminals that have a single child ("for reducing
length"), which makes the mapping lossy. Both are here so that users can choose knowingly.

Modes (``<encoder-only>``, ``<decoder-only>``, ``<encoder-decoder>``) are attention layouts of one shared
Transformer; :func:`unixcoder_plan` builds them as :class:`structlm.plan.Plan` objects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from structlm.code.parser import CodeTree, LanguageSpec, Node, language_spec, root_node, tree_walk
from structlm.layouts import Part, chain
from structlm.plan import Plan

__all__ = [
    "Markers",
    "UNIXCODER_MODES",
    "unixcoder_sequence",
    "from_unixcoder_sequence",
    "marker_vocabulary",
    "add_marker_tokens",
    "add_unixcoder_tokens",
    "unixcoder_plan",
]

UNIXCODER_MODES = ("encoder-only", "decoder-only", "encoder-decoder")
MASK0 = "<mask0>"


@dataclass(frozen=True)
class Markers:
    """Spelling of the non-terminal markers; ``{type}`` is replaced by the node type.

    The default is the released spelling ``AST#<type>#Left`` / ``AST#<type>#Right``.
    """

    left: str = "AST#{type}#Left"
    right: str = "AST#{type}#Right"

    def __post_init__(self) -> None:
        for name, fmt in (("left", self.left), ("right", self.right)):
            if fmt.count("{type}") != 1:
                raise ValueError(f"Markers.{name} must contain '{{type}}' exactly once, got {fmt!r}")
        if self._parts(self.left) == self._parts(self.right):
            raise ValueError(f"left and right markers must differ, both are {self.left!r}")

    @staticmethod
    def _parts(fmt: str) -> tuple[str, str]:
        prefix, suffix = fmt.split("{type}")
        return prefix, suffix

    def open(self, node_type: str) -> str:
        return self.left.replace("{type}", node_type)

    def close(self, node_type: str) -> str:
        return self.right.replace("{type}", node_type)

    def parse(self, token: str) -> tuple[str, str] | None:
        """``("left" | "right", type)`` when ``token`` is a marker, else None.

        When both spellings match (``<{type}>`` also matches ``</x>``), the more specific one wins.
        """
        found = None
        for side, fmt in (("left", self.left), ("right", self.right)):
            prefix, suffix = self._parts(fmt)
            if len(token) > len(prefix) + len(suffix) and token.startswith(prefix) and token.endswith(suffix):
                if found is None or len(prefix) + len(suffix) > found[0]:
                    found = (len(prefix) + len(suffix), side, token[len(prefix) : len(token) - len(suffix)])
        return None if found is None else (found[1], found[2])


def unixcoder_sequence(
    tree: CodeTree | Node,
    style: str = "paper",
    markers: Markers | None = None,
    tokenizer=None,
) -> list[str]:
    """Flatten a tree into UniXcoder's marker sequence.

    ``style="paper"``: every non-terminal is bracketed (one-to-one; comments stay as leaves).
    ``style="release"``: comments dropped, single-child non-terminals unmarked, ``#`` stripped from types.
    With ``tokenizer``, each leaf is replaced by ``tokenizer.tokenize(leaf)`` (leaves tokenized in isolation,
    as the release does; markers stay single tokens). Raises ``ValueError`` in paper style when a leaf's
    text reads as a marker, since the sequence could then not be inverted.
    """
    if style not in ("paper", "release"):
        raise ValueError(f"style must be 'paper' or 'release', got {style!r}")
    markers = markers or Markers()
    root = root_node(tree)
    release = style == "release"
    out: list[str] = []
    append, extend = out.append, out.extend
    opened: dict[str, tuple[str, str]] = {}  # node type -> (left, right) marker strings
    lp, ls = Markers._parts(markers.left)
    rp, rs = Markers._parts(markers.right)

    def pair(kind: str) -> tuple[str, str]:
        found = opened.get(kind)
        if found is None:
            name = kind.replace("#", "") if release else kind
            found = opened[kind] = (markers.open(name), markers.close(name))
        return found

    def leaf(text: str) -> None:
        if not release and (
            (text.startswith(lp) and text.endswith(ls)) or (text.startswith(rp) and text.endswith(rs))
        ) and markers.parse(text) is not None:
            raise ValueError(f"leaf text {text!r} reads as a marker under {markers}; choose another marker spelling")
        if tokenizer is not None:
            extend(tokenizer.tokenize(text))
        else:
            append(text)

    def emit(node: Node) -> None:
        if node.text is not None:
            if not (release and node.comment):
                leaf(node.text)
            return
        children = node.children
        if release:
            if not node.clean:
                children = [c for c in children if not c.comment]
            if len(children) == 1:
                emit(children[0])
                return
        left, right = pair(node.type)
        append(left)
        for child in children:
            if child.text is not None and not (release and child.comment):
                leaf(child.text)
            elif child.text is None:
                emit(child)
        append(right)

    with tree_walk():
        emit(root)
    return out


def from_unixcoder_sequence(tokens: Sequence[str], markers: Markers | None = None) -> Node:
    """Rebuild the tree from a paper-style sequence (a stack parse over the markers).

    Leaves come back as ``Node("token", text=...)``; compare trees with ``Node.signature()``. Raises
    ``ValueError`` with the position of the first unbalanced or mismatched marker.
    """
    markers = markers or Markers()
    stack: list[Node] = []
    roots: list[Node] = []
    for position, token in enumerate(tokens):
        marker = markers.parse(token)
        if marker is None:
            leaf = Node("token", None, token)
            (stack[-1].children if stack else roots).append(leaf)
        elif marker[0] == "left":
            stack.append(Node(marker[1], []))
        else:
            if not stack:
                raise ValueError(f"token {position}: closing marker {token!r} with no open non-terminal")
            node = stack.pop()
            if node.type != marker[1]:
                raise ValueError(f"token {position}: {token!r} closes {markers.open(node.type)!r}")
            (stack[-1].children if stack else roots).append(node)
    if stack:
        raise ValueError(f"{len(stack)} non-terminal(s) left open at the end, innermost {stack[-1].type!r}")
    if len(roots) != 1:
        raise ValueError(f"a sequence must encode exactly one tree, found {len(roots)} top-level items")
    return roots[0]


def marker_vocabulary(
    language: str | LanguageSpec, markers: Markers | None = None, style: str = "paper"
) -> list[str]:
    """All markers a grammar can produce: left and right for every named, visible node kind.

    UniXcoder's 1,416 extra tokens are this list taken over its six pre-training grammars.
    """
    markers = markers or Markers()
    lang = language_spec(language).language()
    kinds = sorted(
        {
            lang.node_kind_for_id(i)
            for i in range(lang.node_kind_count)
            if lang.node_kind_is_named(i) and lang.node_kind_is_visible(i)
        }
    )
    if style == "release":
        kinds = sorted({k.replace("#", "") for k in kinds})
    return [m for k in kinds for m in (markers.open(k), markers.close(k))]


def add_marker_tokens(tokenizer, markers_or_language: Sequence[str] | str, style: str = "paper") -> int:
    """Register markers as special tokens so each stays one token; returns how many were new.

    Pass a language name to register its whole :func:`marker_vocabulary`. Resize the model afterwards:
    ``model.resize_token_embeddings(len(tokenizer))``.
    """
    if isinstance(markers_or_language, str):
        tokens = marker_vocabulary(markers_or_language, style=style)
    else:
        tokens = list(markers_or_language)
    return tokenizer.add_tokens(tokens, special_tokens=True)


def add_unixcoder_tokens(tokenizer) -> int:
    """Register the mode prefixes and ``<mask0>`` (UniXcoder's checkpoints already have them)."""
    return tokenizer.add_tokens([f"<{m}>" for m in UNIXCODER_MODES] + [MASK0], special_tokens=True)


def _special_id(tokenizer, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (tokenizer.unk_token_id is not None and token_id == tokenizer.unk_token_id):
        raise ValueError(
            f"the tokenizer has no {token!r} token; call structlm.code.add_unixcoder_tokens(tokenizer) "
            "(and resize the model's embeddings) or use a UniXcoder checkpoint"
        )
    return int(token_id)


def _ids(tokenizer, source) -> list[int]:
    if isinstance(source, str):
        return list(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(source)))
    items = list(source)
    if all(isinstance(x, int) for x in items):
        return items
    if all(isinstance(x, str) for x in items):
        return list(tokenizer.convert_tokens_to_ids(items))
    raise TypeError("source must be a string, a list of token strings, or a list of token ids")


def unixcoder_plan(
    tokenizer,
    source,
    mode: str = "encoder-only",
    target=None,
    max_length: int = 1024,
    position_offset: int = 0,
) -> Plan:
    """A UniXcoder input as a Plan, with the released templates and truncation.

    - ``encoder-only``: one bidirectional segment ``<s> <encoder-only> </s> code[:max-4] </s>``.
    - ``decoder-only``: one causal segment ``<s> <decoder-only> </s> code[-(max-3):]`` (keeps the right context).
    - ``encoder-decoder``: a bidirectional source ``<s> <encoder-decoder> </s> code[:max-5] </s>`` and a causal
      target ``<mask0> target...`` that sees the whole source (UniLM-style: one Transformer, two masks).

    ``source``/``target``: text, token strings (e.g. a :func:`unixcoder_sequence` made with a tokenizer) or
    ids. Positions run 0.. plus ``position_offset`` (RoBERTa-family checkpoints such as UniXcoder number
    positions from ``pad_token_id + 1``; pass that when you feed ``plan.position_ids`` to them).
    """
    if mode.startswith("<") and mode.endswith(">"):
        mode = mode[1:-1]
    if mode not in UNIXCODER_MODES:
        raise ValueError(f"mode must be one of {', '.join(UNIXCODER_MODES)}, got {mode!r}")
    if target is not None and mode != "encoder-decoder":
        raise ValueError(f"a target only exists in encoder-decoder mode, not {mode!r}")
    if max_length < 6:
        raise ValueError(f"max_length must leave room for the template, got {max_length}")
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if cls_id is None or sep_id is None:
        raise ValueError("the tokenizer needs a cls/bos and a sep/eos token for UniXcoder's template")
    prefix = [cls_id, _special_id(tokenizer, f"<{mode}>"), sep_id]
    ids = _ids(tokenizer, source)
    if mode == "encoder-only":
        parts = [Part("source", prefix + ids[: max_length - 4] + [sep_id], causal=False, role="source")]
    elif mode == "decoder-only":
        kept = ids[-(max_length - 3) :] if ids else []
        parts = [Part("source", prefix + kept, causal=True, role="source")]
    else:
        src = prefix + ids[: max_length - 5] + [sep_id]
        tgt = [_special_id(tokenizer, MASK0)] + (_ids(tokenizer, target) if target is not None else [])
        if len(src) + len(tgt) > max_length:
            raise ValueError(
                f"source ({len(src)} tokens) + target ({len(tgt)} tokens) exceed max_length={max_length}"
            )
        parts = [Part("source", src, causal=False, role="source"), Part("target", tgt, causal=True, role="target")]
    plan = Plan()
    chain(plan, parts, start=position_offset)
    return plan
