"""Language specs for structlm.code: one JSON file per language.

Each spec names the grammar wheel (``package``, importable ``module``, ``entry`` function returning the
language capsule), the node types kept whole as leaves (string literals), the comment node types, the
node types that make a function (used to cut probing snippets out of files), file extensions, aliases,
and the grammar version the spec was checked against (``grammar_version``). Node type names drift
between grammar versions, so a spec is only trusted for the version it names; ``tests/test_code_parse.py``
checks every listed type against the installed grammar.
"""
from pathlib import Path

SPEC_DIR = Path(__file__).resolve().parent
