"""AST-Probe's view of a syntax tree: binarization, the (d, c, u) tuple, its inverse, and constituent F1.

Hernández López et al. (ASE 2022) turn an AST into a tuple a probe can predict from token vectors:
- the tree is binarized: a chain of single-child non-terminals merges into one node labelled
  ``a<sep>b``; a chain ending in a single terminal makes that terminal a leaf whose *unary label* ``u`` is
  the chain; a node with n > 2 children becomes right-branching with empty nodes ``<empty>``;
- ``d[i]`` is the height of the lowest common ancestor of tokens i and i+1 in the binary tree, ``c[i]`` its
  label, ``u[i]`` the unary label of token i (``<empty>`` when none).
The inverse splits at the first maximum of ``d`` (a Cartesian tree), then removes empty nodes, re-inserts
unary labels and expands merged chains. Only the ranking of ``d`` matters, so a probe's predicted
distances can be decoded the same way. Comments are dropped, as the paper drops them before parsing.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from structlm.errors import AlignmentError
from structlm.code.parser import CodeTree, Node, root_node, tree_walk

__all__ = [
    "EMPTY",
    "SEP",
    "ASTTuple",
    "BinaryNode",
    "AlignmentError",
    "ast_tuple",
    "binarize",
    "tree_from_tuple",
    "constituents",
    "gold_constituents",
    "precision_recall_f1",
    "align_subwords",
]

EMPTY = "<empty>"
SEP = "<sep>"


@dataclass
class ASTTuple:
    """Tokens w_0..w_n with ``d`` (n heights), ``c`` (n labels), ``u`` (n+1 labels) and token byte spans."""

    tokens: list[str]
    d: list[int]
    c: list[str]
    u: list[str]
    spans: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class BinaryNode:
    """A node of the binarized tree: a leaf (``token`` index, ``unary`` label) or a labelled pair."""

    label: str
    left: "BinaryNode | None" = None
    right: "BinaryNode | None" = None
    token: int = -1
    unary: str = EMPTY

    @property
    def is_leaf(self) -> bool:
        return self.left is None

    def signature(self) -> list[tuple]:
        """Flat pre-order encoding for equality checks (no recursion, so any depth compares):
        ``("leaf", token, unary)`` or ``("pair", label)`` followed by the left then the right subtree."""
        out: list[tuple] = []
        stack = [self]
        while stack:
            node = stack.pop()
            if node.left is None:
                out.append(("leaf", node.token, node.unary))
            else:
                out.append(("pair", node.label))
                stack.append(node.right)  # type: ignore[arg-type]
                stack.append(node.left)
        return out


def _kids(node: Node) -> list[Node]:
    """Children without comments. (A non-terminal left with no children this way becomes one empty token.)"""
    if node.clean:
        return node.children
    return [k for k in node.children if not k.comment]


def ast_tuple(tree: CodeTree | Node) -> ASTTuple:
    """(tokens, d, c, u) exactly as AST-Probe builds them (comments dropped, strings are single tokens).

    Runs in one pass over the tree: each n-ary node reserves its n-1 boundary slots, and once its children's
    heights are known the right-branching fold fills them (``d`` = height of the empty node or of the node
    itself at the first boundary).
    """
    root = root_node(tree)
    if (root.text is None and not _kids(root)) or root.text == "":
        raise ValueError("the program has no tokens (empty, or only comments)")
    tokens: list[str] = []
    spans: list[tuple[int, int]] = []
    d: list[int] = []
    c: list[str] = []
    u: list[str] = []

    def token(leaf: Node, unary: str) -> None:
        tokens.append(leaf.text)  # type: ignore[arg-type]
        spans.append((leaf.start_byte, leaf.end_byte))
        u.append(unary)

    def visit(node: Node, label: str) -> int:
        """Emit the subtree of non-terminal ``node`` (under merged chain ``label``); return its height."""
        while True:
            kids = _kids(node)
            merged = node.type if not label else label + SEP + node.type
            if len(kids) == 1:
                kid = kids[0]
                if kid.text is not None:  # a chain ending in one terminal: the leaf carries the chain
                    token(kid, merged)
                    return 0
                label, node = merged, kid
                continue
            break
        if not kids:  # a non-terminal emptied by comment removal deeper down: one empty token
            tokens.append("")
            spans.append((node.start_byte, node.start_byte))
            u.append(merged)
            return 0
        heights = []
        slots = []
        for position, kid in enumerate(kids):
            if position:
                slots.append(len(d))
                d.append(0)
                c.append(EMPTY)
            if kid.text is not None:  # inlined token(kid, EMPTY): this is the hot path
                tokens.append(kid.text)
                spans.append((kid.start_byte, kid.end_byte))
                u.append(EMPTY)
                heights.append(0)
            else:
                heights.append(visit(kid, ""))
        height = heights[-1]
        for j in range(len(kids) - 2, -1, -1):
            height = max(heights[j], height) + 1
            d[slots[j]] = height
        c[slots[0]] = merged
        return height

    if root.text is not None:
        token(root, EMPTY)
    else:
        with tree_walk():
            visit(root, "")
    return ASTTuple(tokens, d, c, u, spans)


def binarize(tree: CodeTree | Node) -> BinaryNode:
    """The binary tree itself (same rules as :func:`ast_tuple`), built directly from the AST.

    Kept separate from :func:`ast_tuple` so tests can check ``tree_from_tuple(..., expand=False)`` against
    a tree built by a different route.
    """
    root = root_node(tree)
    counter = [0]

    def leaf(unary: str) -> BinaryNode:
        counter[0] += 1
        return BinaryNode(label="", token=counter[0] - 1, unary=unary or EMPTY)

    def build(node: Node, label: str) -> BinaryNode:
        while node.text is None:
            kids = _kids(node)
            merged = node.type if not label else label + SEP + node.type
            if len(kids) == 1:
                label, node = merged, kids[0]
                if node.text is not None:
                    break
                continue
            if not kids:
                return leaf(merged)
            parts = [build(k, "") for k in kids]
            right = parts[-1]
            for j in range(len(parts) - 2, 0, -1):
                right = BinaryNode(EMPTY, parts[j], right)
            return BinaryNode(merged, parts[0], right)
        return leaf(label)

    with tree_walk():
        return build(root, "")


def _cartesian(d: Sequence[float]) -> tuple[list[int], list[int], int]:
    """Left/right child arrays of the max-Cartesian tree over ``d`` (ties: the first maximum is the root,
    as ``np.argmax`` splits in the paper's Algorithm 2). O(n) with a stack."""
    n = len(d)
    left, right = [-1] * n, [-1] * n
    stack: list[int] = []
    for i in range(n):
        last = -1
        while stack and d[stack[-1]] < d[i]:
            last = stack.pop()
        left[i] = last
        if stack:
            right[stack[-1]] = i
        stack.append(i)
    return left, right, stack[0] if stack else -1


def _binary_from_tuple(d, c, u) -> BinaryNode:
    n = len(u)
    if len(d) != n - 1 or len(c) != n - 1:
        raise ValueError(f"a tuple for {n} tokens needs {n - 1} distances and labels, got d={len(d)}, c={len(c)}")
    if n == 0:
        raise ValueError("a tuple needs at least one token")
    if n == 1:
        return BinaryNode("", token=0, unary=u[0])
    left, right, top = _cartesian([float(x) for x in d])
    # iterative construction: node i covers tokens [lo, hi]; it splits them into [lo, i] and [i+1, hi]
    nodes: dict[int, BinaryNode] = {}
    order: list[tuple[int, int, int]] = []
    stack = [(top, 0, n - 1)]
    while stack:
        i, lo, hi = stack.pop()
        order.append((i, lo, hi))
        if left[i] >= 0:
            stack.append((left[i], lo, i))
        if right[i] >= 0:
            stack.append((right[i], i + 1, hi))
    for i, lo, hi in reversed(order):
        lnode = nodes.pop(left[i]) if left[i] >= 0 else BinaryNode("", token=i, unary=u[i])
        rnode = nodes.pop(right[i]) if right[i] >= 0 else BinaryNode("", token=i + 1, unary=u[i + 1])
        nodes[i] = BinaryNode(c[i], lnode, rnode)
    return nodes[top]


def _chain(labels: str, child: Node) -> Node:
    node = child
    for label in reversed(labels.split(SEP)):
        node = Node(label, [node])
    return node


def tree_from_tuple(
    d: Sequence[float],
    c: Sequence[str],
    u: Sequence[str],
    tokens: Sequence[str] | None = None,
    expand: bool = True,
) -> Node | BinaryNode:
    """Rebuild the tree from (d, c, u) (the paper's Algorithm 2 and post-processing).

    ``expand=False`` returns the binary tree. Otherwise empty nodes are removed (their children join the
    parent; an empty root becomes ``bad_root``), unary labels are inserted above their leaves and merged
    ``a<sep>b`` labels become chains — the AST whose constituents the paper scores. Leaves are
    ``Node("token", text=tokens[i] or str(i))`` in order.
    """
    binary = _binary_from_tuple(list(d), list(c), list(u))
    if not expand:
        return binary
    texts = list(tokens) if tokens is not None else [str(i) for i in range(len(u))]

    def grow(b: BinaryNode, is_root: bool) -> list[Node]:
        if b.left is None:
            leaf = Node("token", None, texts[b.token])
            return [leaf if b.unary == EMPTY else _chain(b.unary, leaf)]
        kids = grow(b.left, False) + grow(b.right, False)  # type: ignore[arg-type]
        if b.label == EMPTY:
            if not is_root:
                return kids
            return [Node("bad_root", kids)]
        top = Node("", kids)
        labels = b.label.split(SEP)
        top.type = labels[-1]
        for label in reversed(labels[:-1]):
            top = Node(label, [top])
        return [top]

    with tree_walk():
        out = grow(binary, True)
    return out[0]


def constituents(tree: Node | CodeTree) -> Counter:
    """Multiset of (label, first token, last token) for every non-terminal; tokens counted in order.

    A span of consecutive tokens is the paper's ``label-i-j-...-k`` string. Comments are skipped, so the
    constituents of a parsed tree are directly comparable with those rebuilt from its tuple.
    """
    root = root_node(tree)
    out: Counter = Counter()
    count = 0
    # iterative post-order computing (first, last) token index per node
    stack: list[tuple[Node, int]] = [(root, -1)]
    while stack:
        node, first = stack.pop()
        if first >= 0:  # closing
            if count - 1 >= first:
                out[(node.type, first, count - 1)] += 1
            continue
        if node.text is not None:
            if not node.comment:
                count += 1
            continue
        kids = _kids(node)
        if not kids and node is not root:  # emptied by comment removal: ast_tuple makes it one empty token
            out[(node.type, count, count)] += 1
            count += 1
            continue
        stack.append((node, count))
        stack.extend((k, -1) for k in reversed(kids))
    return out


def gold_constituents(tree: CodeTree | Node) -> Counter:
    """Constituents of the AST that (d, c, u) encodes, computed straight from the tree (no tuple)."""
    return constituents(tree)


def precision_recall_f1(gold: Counter, predicted: Counter) -> tuple[float, float, float]:
    """Labelled constituent precision, recall and F1 for one snippet (the paper averages these per snippet).

    Matches are counted as a multiset intersection; with no repeated constituents (the usual case) this is
    the official code's ``[n for n in pred if n in gold]``.
    """
    if not gold and not predicted:
        return 1.0, 1.0, 1.0
    hits = sum((gold & predicted).values())
    p = hits / sum(predicted.values()) if predicted else 0.0
    r = hits / sum(gold.values()) if gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1


def align_subwords(tokens: Sequence[str], tokenizer, max_length: int | None = None) -> tuple[list[int], list[int]]:
    """Tokenize code tokens joined by single spaces (as AST-Probe feeds them) and map sub-words back.

    Works for any HF *fast* tokenizer through its offset mapping. Returns ``(input_ids, word_index)`` where
    ``word_index[j]`` is the code token of sub-word j, or -1 for special tokens. Mean-pool hidden states over
    equal indices to get one vector per code token. Raises :class:`AlignmentError` for tokens without
    sub-words and ``ValueError`` when the input exceeds ``max_length``.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("align_subwords needs a fast tokenizer (offset mapping); load it with use_fast=True")
    starts, pieces, pos = [], [], 0
    for token in tokens:
        starts.append(pos)
        pieces.append(token)
        pos += len(token) + 1
    text = " ".join(pieces)
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True, verbose=False)
    ids = list(enc["input_ids"])
    if max_length is not None and len(ids) > max_length:
        raise ValueError(f"{len(ids)} sub-words exceed max_length={max_length}")
    special = set(tokenizer.all_special_ids)
    word_index = []
    for tid, (s, e) in zip(ids, enc["offset_mapping"]):
        if e <= s or (tid in special and e - s == 0):
            word_index.append(-1)
            continue
        # byte-level BPE (GPT-2, Llama 3, SmolLM2) glues the separating space to the next word ("Ġfoo") and
        # its offsets may include that space: locate a sub-word by its first non-space character; a piece
        # that is only space belongs to the word that follows it
        while s < e and text[s] == " ":
            s += 1
        if s == e and s >= len(text):
            word_index.append(-1)
            continue
        word_index.append(bisect_right(starts, s) - 1)
    covered = set(word_index)
    missing = [i for i in range(len(tokens)) if i not in covered]
    if missing:
        shown = ", ".join(f"{i}:{tokens[i]!r}" for i in missing[:5])
        raise AlignmentError(f"{len(missing)} code token(s) have no sub-word: {shown}")
    return ids, word_index
