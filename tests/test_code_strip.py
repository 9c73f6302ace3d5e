"""strip_comments, the AST-Probe preprocessing: comments and docstrings go, continued lines are joined, a
docstring on the header line stays — checked on handwritten cases and on every standard-library function."""
from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from structlm.code import ast_tuple, parse, strip_comments
from structlm.probe.data import collect_functions
from tests.test_code_parse import stdlib_files, stdlib_sample


def tokens(code: str) -> list[str]:
    return ast_tuple(parse(code, "python", strict=True)).tokens


def test_backslash_continued_lines_are_joined():
    source = "def f(a, b):\n    x = a + \\\n        b\n    return\\\nx\n"
    assert tokens(source)[12] == "\\\n"  # tree-sitter keeps the continuation as a leaf
    stripped = strip_comments(source, "python")
    assert stripped == "def f(a, b):\n    x = a +          b\n    return x"
    assert tokens(stripped) == ["def", "f", "(", "a", ",", "b", ")", ":", "x", "=", "a", "+", "b", "return", "x"]


def test_continuation_inside_a_string_is_the_string():
    source = 'def f():\n    return "a\\\nb"\n'
    assert strip_comments(source, "python") == 'def f():\n    return "a\\\nb"'


def test_docstring_on_the_header_line_stays():
    assert strip_comments('def f(): "doc"\n', "python") == 'def f(): "doc"'
    assert tokens(strip_comments('def f(): "doc"\n', "python")) == ["def", "f", "(", ")", ":", '"doc"']
    assert strip_comments('class K: "d"\n', "python") == 'class K: "d"'
    # on a line of its own it goes, also when implicitly concatenated over a continued line
    source = 'def f():\n    "doc" \\\n    "more"\n    return 1\n'
    assert strip_comments(source, "python") == "def f():\n    return 1"
    # only the first statement of a body is a docstring
    assert strip_comments('def f():\n    x = 1\n    "not a docstring"\n', "python") == (
        'def f():\n    x = 1\n    "not a docstring"')


def _empty_blocks(tree) -> int:
    return sum(1 for node in tree.root.iter() if node.type == "block" and not node.children)


def _docstring_only_bodies(code: str) -> int:
    """Blocks whose one statement is a string on a line of its own: the bodies stripping may empty."""
    tree = parse(code, "python", strict=True)
    data = tree.source
    count = 0
    for node in tree.root.iter():
        body = [c for c in node.children if not c.comment] if node.type == "block" else []
        if len(body) == 1 and body[0].type == "expression_statement" and len(body[0].children) == 1 and \
                body[0].children[0].type in ("string", "concatenated_string"):
            line = data[data.rfind(b"\n", 0, body[0].start_byte) + 1: body[0].start_byte]
            count += not line.strip()
    return count


def check_function(code: str) -> None:
    stripped = strip_comments(code, "python")
    tree = parse(stripped, "python", strict=True)
    tup = ast_tuple(tree)
    assert not any(token.startswith("\\") and token.strip("\\\r\n") == "" for token in tup.tokens), code
    # every empty body comes from a docstring-only body on its own line, nothing else is emptied
    assert _empty_blocks(tree) == _docstring_only_bodies(code), code


def test_stdlib_sample_functions_strip_cleanly():
    wave = Path(sysconfig.get_paths()["stdlib"]) / "wave.py"  # continued lines (line 164 in 3.12)
    functions = collect_functions([wave] + stdlib_sample(step=120))
    assert any("\\\n" in code for code in functions)
    for code in functions:
        check_function(code)


@pytest.mark.slow
def test_every_stdlib_function_strips_cleanly():
    functions = collect_functions(stdlib_files())
    continued = [code for code in functions if "\\\n" in code]
    assert len(functions) > 10_000 and continued
    for code in functions:
        check_function(code)
