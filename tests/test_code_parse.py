"""Parsing: language specs against the installed grammars, errors, byte-exact leaves, stdlib sources."""
from __future__ import annotations

import sysconfig
import warnings
from pathlib import Path

import pytest

from structlm.code import (
    CodeSyntaxError,
    CodeSyntaxWarning,
    UnknownLanguageError,
    functions,
    language_spec,
    parse,
    strip_comments,
    supported_languages,
)
from tests.test_code_snippets import SNIPPETS

TEN = ["c", "cpp", "go", "java", "javascript", "php", "python", "ruby", "rust", "typescript"]


def stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)


def stdlib_sample(step: int = 60) -> list[Path]:
    """Every ``step``-th stdlib file (sorted): about 30 files spread over the whole library."""
    return stdlib_files()[::step]


def parse_quiet(data: bytes | str, language: str = "python"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CodeSyntaxWarning)
        return parse(data, language)


def test_supported_languages_are_the_ten():
    assert supported_languages() == TEN


@pytest.mark.parametrize("language", TEN)
def test_spec_matches_installed_grammar(language):
    spec = language_spec(language)
    assert spec.installed_version() == spec.grammar_version, "spec written for another grammar version"
    lang = spec.language()
    kinds = {lang.node_kind_for_id(i) for i in range(lang.node_kind_count) if lang.node_kind_is_named(i)}
    for kind in spec.leaf_types | spec.comment_types | spec.function_types:
        assert kind in kinds, f"{language}: node type {kind!r} does not exist in the grammar"


def test_unknown_language_lists_supported_ones():
    with pytest.raises(UnknownLanguageError) as info:
        parse("x = 1", "cobol")
    message = str(info.value)
    assert "'cobol'" in message
    for name in TEN:
        assert name in message


def test_aliases_and_case():
    assert language_spec("PY").name == "python"
    assert language_spec("c++").name == "cpp"
    assert parse("let x = 1;", "JS").language == "javascript"


def test_source_type_checked():
    with pytest.raises(TypeError, match="str or bytes"):
        parse(42, "python")  # type: ignore[arg-type]


def test_strict_missing_node_line_and_column():
    with pytest.raises(CodeSyntaxError) as info:
        parse("x = 1\ndef f(:\n    pass\n", "python", strict=True)
    err = info.value
    assert (err.lineno, err.offset) == (2, 7)
    assert "missing ')'" in str(err) and "line 2, column 7" in str(err)
    assert err.issues[0].kind == "MISSING"


def test_strict_error_column_counts_characters_not_bytes():
    # the flagged 'ü' starts at byte 5 but at character 4 (0-based): column 5, not 6
    with pytest.raises(CodeSyntaxError) as info:
        parse("ü = ü ü\n", "python", strict=True)
    assert (info.value.lineno, info.value.offset) == (1, 5)
    assert info.value.issues[0].kind == "ERROR" and info.value.issues[0].text == "ü"


def test_strict_error_other_language():
    with pytest.raises(CodeSyntaxError) as info:
        parse("class A {\n  int x = 1\n}\n", "java", strict=True)
    assert info.value.issues[0].kind == "MISSING"
    assert info.value.lineno == 2
    assert "java syntax error" in str(info.value)


def test_non_strict_reports_and_returns_tree():
    with pytest.warns(CodeSyntaxWarning, match="line 2, column 7"):
        tree = parse("x = 1\ndef f(:\n    pass\n", "python")
    assert tree.has_errors and tree.errors[0].line == 2
    assert tree.root.type == "module"


def test_clean_parse_has_no_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tree = parse("def f(a):\n    return a\n", "python", strict=True)
    assert tree.errors == [] and not tree.has_errors


def check_leaves(tree) -> None:
    """Leaves are byte-exact, ordered, non-overlapping, and only whitespace lies between them."""
    source = tree.source
    last = 0
    pieces = []
    for leaf in tree.root.leaves():
        assert leaf.start_byte >= last, f"leaf {leaf!r} overlaps the previous one"
        gap = source[last : leaf.start_byte]
        if last == 0:
            gap = gap.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is no token
        assert gap.replace(b"\\", b"").strip() == b"", f"non-whitespace {gap!r} between leaves"
        assert leaf.text == source[leaf.start_byte : leaf.end_byte].decode("utf-8", "surrogateescape")
        pieces.append(source[last : leaf.start_byte] + leaf.text.encode("utf-8", "surrogateescape"))
        last = leaf.end_byte
    pieces.append(source[last:])
    assert b"".join(pieces) == source


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_snippet_leaves_are_byte_exact(language):
    check_leaves(parse(SNIPPETS[language], language, strict=True))


def test_non_ascii_identifiers_and_strings_are_exact():
    tree = parse(SNIPPETS["python"], "python", strict=True)
    texts = [leaf.text for leaf in tree.root.leaves()]
    for expected in ["größe", "länge", '"café ☕"', "Ünit", "π", '"""Fläche eines Rechtecks."""', "# 面积"]:
        assert expected in texts
    # the released UniXcoder preprocessing slices str lines with byte columns; that garbles these leaves
    lines = SNIPPETS["python"].split("\n")
    naive = []
    for leaf in tree.root.leaves():
        ts = tree.ts_tree.root_node.descendant_for_byte_range(leaf.start_byte, leaf.end_byte)
        (r0, c0), (r1, c1) = ts.start_point, ts.end_point
        if r0 == r1:
            naive.append(lines[r0][c0:c1])
    assert "größe" not in naive and "größe(l" in naive  # 'def größe(länge' sliced with byte columns


def test_strings_and_comments_are_single_leaves():
    tree = parse('x = f"a {b} c"  # note\n', "python", strict=True)
    leaves = [(leaf.type, leaf.text, leaf.comment) for leaf in tree.root.leaves()]
    assert ("string", 'f"a {b} c"', False) in leaves
    assert ("comment", "# note", True) in leaves
    java = parse('class A { String s = "x y"; /* c */ }', "java", strict=True)
    assert any(leaf.type == "string_literal" and leaf.text == '"x y"' for leaf in java.root.leaves())
    assert any(leaf.comment and leaf.text == "/* c */" for leaf in java.root.leaves())


def test_functions_and_strip_comments():
    source = 'def a(x):\n    """doc"""\n    # note\n    return x  # trailing\n\nclass K:\n    def b(self):\n        return 1\n'
    tree = parse(source, "python", strict=True)
    found = functions(tree)
    assert [tree.text(f).split("(")[0] for f in found] == ["def a", "def b"]
    stripped = strip_comments(tree.text(found[0]), "python")
    assert stripped == "def a(x):\n    return x"
    js = strip_comments('let s = "// not a comment"; // a comment\n/* gone */ f();', "javascript")
    assert js == 'let s = "// not a comment";\n f();'


@pytest.mark.parametrize("path", stdlib_sample(), ids=lambda p: p.name)
def test_stdlib_sample_leaves_exact(path):
    check_leaves(parse_quiet(path.read_bytes()))


@pytest.mark.slow
def test_stdlib_all_leaves_exact():
    for path in stdlib_files():
        check_leaves(parse_quiet(path.read_bytes()))


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_clean_flag_marks_comment_free_subtrees(language):
    tree = parse(SNIPPETS[language], language)
    for node in tree.root.iter():
        has_comment = any(leaf.comment for leaf in node.leaves())
        assert node.clean == (not has_comment), node
