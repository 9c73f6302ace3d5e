"""Code front-end: tree-sitter parsing, UniXcoder's AST mapping and modes, AST-Probe's (d, c, u).

One import for users; the pieces live in small modules:
- :mod:`structlm.code.parser`: language specs (``parsers/*.json``, shipped as ``structlm/code/languages``), ``parse``
  into an exact byte-sliced tree;
- :mod:`structlm.code.unixcoder`: ``unixcoder_sequence`` (paper or release style), its inverse, markers as
  special tokens, and the three UniXcoder modes as Plans;
- :mod:`structlm.code.ast`: AST-Probe's binarization, ``ast_tuple`` -> (d, c, u), ``tree_from_tuple``, and
  constituent precision / recall / F1; sub-word alignment for fast tokenizers.
"""
from structlm.lazy import lazy_exports

_EXPORTS = {
    "CodeSyntaxError": "structlm.errors",
    "CodeSyntaxWarning": "structlm.code.parser",
    "CodeTree": "structlm.code.parser",
    "LanguageSpec": "structlm.code.parser",
    "Node": "structlm.code.parser",
    "SyntaxIssue": "structlm.code.parser",
    "UnknownLanguageError": "structlm.errors",
    "deep_recursion": "structlm.code.parser",
    "functions": "structlm.code.parser",
    "tree_walk": "structlm.code.parser",
    "language_spec": "structlm.code.parser",
    "parse": "structlm.code.parser",
    "strip_comments": "structlm.code.parser",
    "supported_languages": "structlm.code.parser",
    "UNIXCODER_MODES": "structlm.code.unixcoder",
    "Markers": "structlm.code.unixcoder",
    "add_marker_tokens": "structlm.code.unixcoder",
    "add_unixcoder_tokens": "structlm.code.unixcoder",
    "from_unixcoder_sequence": "structlm.code.unixcoder",
    "marker_vocabulary": "structlm.code.unixcoder",
    "unixcoder_plan": "structlm.code.unixcoder",
    "unixcoder_sequence": "structlm.code.unixcoder",
    "EMPTY": "structlm.code.ast",
    "SEP": "structlm.code.ast",
    "AlignmentError": "structlm.errors",
    "ASTTuple": "structlm.code.ast",
    "BinaryNode": "structlm.code.ast",
    "align_subwords": "structlm.code.ast",
    "ast_tuple": "structlm.code.ast",
    "binarize": "structlm.code.ast",
    "constituents": "structlm.code.ast",
    "gold_constituents": "structlm.code.ast",
    "precision_recall_f1": "structlm.code.ast",
    "tree_from_tuple": "structlm.code.ast",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
