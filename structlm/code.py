"""Code front-end: tree-sitter parsing, UniXcoder's AST mapping and modes, AST-Probe's (d, c, u).

One import for users; the pieces live in small modules:
- :mod:`structlm.code_parse`: language specs (``parsers/*.json``), ``parse`` into an exact byte-sliced tree;
- :mod:`structlm.code_unixcoder`: ``unixcoder_sequence`` (paper or release style), its inverse, markers as
  special tokens, and the three UniXcoder modes as Plans;
- :mod:`structlm.code_ast`: AST-Probe's binarization, ``ast_tuple`` -> (d, c, u), ``tree_from_tuple``, and
  constituent precision / recall / F1; sub-word alignment for fast tokenizers.
"""
from structlm.code_parse import (
    CodeSyntaxError,
    CodeSyntaxWarning,
    CodeTree,
    LanguageSpec,
    Node,
    SyntaxIssue,
    UnknownLanguageError,
    deep_recursion,
    functions,
    tree_walk,
    language_spec,
    parse,
    strip_comments,
    supported_languages,
)
from structlm.code_unixcoder import (
    UNIXCODER_MODES,
    Markers,
    add_marker_tokens,
    add_unixcoder_tokens,
    from_unixcoder_sequence,
    marker_vocabulary,
    unixcoder_plan,
    unixcoder_sequence,
)
from structlm.code_ast import (
    EMPTY,
    SEP,
    AlignmentError,
    ASTTuple,
    BinaryNode,
    align_subwords,
    ast_tuple,
    binarize,
    constituents,
    gold_constituents,
    precision_recall_f1,
    tree_from_tuple,
)

__all__ = [
    "CodeSyntaxError",
    "CodeSyntaxWarning",
    "CodeTree",
    "LanguageSpec",
    "Node",
    "SyntaxIssue",
    "UnknownLanguageError",
    "deep_recursion",
    "tree_walk",
    "functions",
    "language_spec",
    "parse",
    "strip_comments",
    "supported_languages",
    "UNIXCODER_MODES",
    "Markers",
    "add_marker_tokens",
    "add_unixcoder_tokens",
    "from_unixcoder_sequence",
    "marker_vocabulary",
    "unixcoder_plan",
    "unixcoder_sequence",
    "EMPTY",
    "SEP",
    "AlignmentError",
    "ASTTuple",
    "BinaryNode",
    "align_subwords",
    "ast_tuple",
    "binarize",
    "constituents",
    "gold_constituents",
    "precision_recall_f1",
    "tree_from_tuple",
]
