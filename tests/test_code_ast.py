"""AST-Probe tuples: the paper's running example, (d, c, u) -> tree exactness, F1, sub-word alignment."""
from __future__ import annotations

import math

import pytest

from structlm.code import (
    ast_tuple,
    binarize,
    constituents,
    gold_constituents,
    parse,
    precision_recall_f1,
    tree_from_tuple,
    align_subwords,
)
from structlm.code import EMPTY, AlignmentError
from tests.test_code_parse import parse_quiet, stdlib_files, stdlib_sample
from tests.test_code_snippets import SNIPPETS

RUNNING = """\
for element in l:
    if element > 0:
        c += 1
    else:
        selected = element
        break
"""


def test_running_example_gives_the_papers_tuple():
    t = ast_tuple(parse(RUNNING, "python", strict=True))
    assert t.tokens == "for element in l : if element > 0 : c += 1 else : selected = element break".split()
    assert t.d == [14, 13, 12, 11, 10, 9, 2, 1, 8, 7, 2, 1, 6, 5, 4, 2, 1, 3]
    assert t.c == [
        "module<sep>for_statement", EMPTY, EMPTY, EMPTY, EMPTY, "block<sep>if_statement",
        "comparison_operator", EMPTY, EMPTY, EMPTY, "block<sep>expression_statement<sep>augmented_assignment",
        EMPTY, EMPTY, "else_clause", EMPTY, "expression_statement<sep>assignment", EMPTY, "block",
    ]
    assert t.u == [EMPTY] * 18 + ["break_statement"]
    # the paper's Fig. 2 (the else block): d ranks (2, 1, 3), c = (expr-assignment, empty, block)
    assert t.d[15:18] == [2, 1, 3]
    assert t.c[15:18] == ["expression_statement<sep>assignment", EMPTY, "block"]
    assert t.u[15:19] == [EMPTY, EMPTY, EMPTY, "break_statement"]


def test_one_wrong_label_costs_one_constituent():
    tree = parse(RUNNING, "python")
    t = ast_tuple(tree)
    gold = gold_constituents(tree)
    c = list(t.c)
    c[10] = "block<sep>expression_statement<sep>assignment"
    p, r, f1 = precision_recall_f1(gold, constituents(tree_from_tuple(t.d, c, t.u)))
    assert p == r == pytest.approx(12 / 13) and f1 == pytest.approx(12 / 13)
    assert round(f1, 3) == 0.923


def check_exact(tree) -> None:
    t = ast_tuple(tree)
    n = len(t.tokens)
    assert len(t.d) == len(t.c) == n - 1 and len(t.u) == n and len(t.spans) == n
    # the binary tree rebuilt from (d, c, u) is the binarized tree built directly from the AST
    assert tree_from_tuple(t.d, t.c, t.u, expand=False).signature() == binarize(tree).signature()
    # after empty-node removal, unary and chain expansion: the AST's constituents, exactly
    gold = gold_constituents(tree)
    rebuilt = constituents(tree_from_tuple(t.d, t.c, t.u, t.tokens))
    assert rebuilt == gold
    assert precision_recall_f1(gold, rebuilt) == (1.0, 1.0, 1.0)
    # leaves of the rebuilt tree are the tokens, in order
    assert [leaf.text for leaf in tree_from_tuple(t.d, t.c, t.u, t.tokens).leaves()] == t.tokens


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_tuple_roundtrip_snippets(language):
    check_exact(parse(SNIPPETS[language], language, strict=True))


def has_tokens(tree) -> bool:
    """False for empty files and files of only comments, which have no AST-Probe tuple."""
    return tree.root.text is None and any(not leaf.comment for leaf in tree.root.leaves())


@pytest.mark.parametrize("path", stdlib_sample(), ids=lambda p: p.name)
def test_tuple_roundtrip_stdlib_sample(path):
    tree = parse_quiet(path.read_bytes())
    if has_tokens(tree):
        check_exact(tree)
    else:
        with pytest.raises(ValueError, match="no tokens"):
            ast_tuple(tree)


@pytest.mark.slow
def test_tuple_roundtrip_all_stdlib():
    for path in stdlib_files():
        tree = parse_quiet(path.read_bytes())
        if has_tokens(tree):
            check_exact(tree)


def test_only_the_ranking_of_d_matters():
    tree = parse(SNIPPETS["go"], "go")
    t = ast_tuple(tree)
    gold = gold_constituents(tree)
    for transform in (lambda x: 3 * x + 7, lambda x: math.exp(x / 3), lambda x: x**2 + 0.5):
        d = [transform(x) for x in t.d]
        assert constituents(tree_from_tuple(d, t.c, t.u)) == gold


def test_comments_do_not_change_the_tuple():
    with_comments = ast_tuple(parse("x = 1  # one\n# two\ny = [x, # three\n 2]\n", "python"))
    without = ast_tuple(parse("x = 1\ny = [x,\n 2]\n", "python"))
    assert (with_comments.tokens, with_comments.d, with_comments.c, with_comments.u) == (
        without.tokens, without.d, without.c, without.u,
    )


def test_strings_are_single_tokens_with_unary_labels():
    t = ast_tuple(parse('def f():\n    "doc string"\n    return 1\n', "python"))
    assert '"doc string"' in t.tokens
    assert t.u[t.tokens.index('"doc string"')] == "expression_statement"


def test_deeply_nested_code():
    source = "x = " + " + ".join(["1"] * 3000) + "\n"
    check_exact(parse(source, "python", strict=True))


def test_empty_program_and_bad_tuples():
    for source in ("", "# only a comment\n"):
        with pytest.raises(ValueError, match="no tokens"):
            ast_tuple(parse(source, "python"))
    with pytest.raises(ValueError, match="needs 2 distances"):
        tree_from_tuple([1], ["a"], ["x", "y", "z"])


def test_empty_root_becomes_bad_root():
    tree = tree_from_tuple([2, 1], [EMPTY, "pair"], [EMPTY, EMPTY, EMPTY])
    assert tree.type == "bad_root"
    assert constituents(tree) == {("bad_root", 0, 2): 1, ("pair", 1, 2): 1}


def test_precision_recall_f1_edge_cases():
    from collections import Counter

    gold = Counter({("a", 0, 1): 1, ("b", 0, 0): 1})
    assert precision_recall_f1(gold, Counter()) == (0.0, 0.0, 0.0)
    assert precision_recall_f1(Counter(), Counter()) == (1.0, 1.0, 1.0)
    p, r, f1 = precision_recall_f1(gold, Counter({("a", 0, 1): 1, ("c", 1, 1): 1, ("d", 0, 1): 1}))
    assert (p, r) == (pytest.approx(1 / 3), 0.5) and f1 == pytest.approx(0.4)


@pytest.fixture(scope="module")
def tokenizer():
    from structlm.probe import load_packaged_minilm

    return load_packaged_minilm(with_model=False)[0]


def test_align_subwords_fast_tokenizer(tokenizer):
    tokens = ast_tuple(parse('größe = "café ☕" + maxValue\n', "python")).tokens
    ids, index = align_subwords(tokens, tokenizer)
    assert len(ids) == len(index)
    assert index[0] == -1 and index[-1] == -1  # [CLS] ... [SEP]
    assert sorted(set(index) - {-1}) == list(range(len(tokens)))
    assert index == sorted(index[:1]) + sorted(index[1:-1]) + index[-1:]  # monotone in the middle
    pieces = tokenizer.convert_ids_to_tokens(ids)
    for w, token in enumerate(tokens):
        joined = "".join(p.removeprefix("##") for p, i in zip(pieces, index) if i == w)
        expected = "".join(tokenizer.convert_ids_to_tokens(tokenizer(token, add_special_tokens=False)["input_ids"])).replace("##", "")
        assert joined == expected


def test_align_subwords_errors(tokenizer):
    with pytest.raises(AlignmentError, match="no sub-word"):
        align_subwords(["x", "", "y"], tokenizer)
    with pytest.raises(ValueError, match="exceed max_length"):
        align_subwords(["x"] * 20, tokenizer, max_length=10)

    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match="fast tokenizer"):
        align_subwords(["x"], Slow())
