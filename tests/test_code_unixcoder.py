"""UniXcoder mapping (paper and release styles), markers as special tokens, and the three modes as Plans."""
from __future__ import annotations

import pytest
import torch

from structlm.code import (
    Markers,
    Node,
    add_marker_tokens,
    add_unixcoder_tokens,
    from_unixcoder_sequence,
    marker_vocabulary,
    parse,
    unixcoder_plan,
    unixcoder_sequence,
)
from tests.test_code_parse import parse_quiet, stdlib_files, stdlib_sample
from tests.test_code_snippets import SNIPPETS

EXAMPLE = "def f(a, b):\n    return a + b"


@pytest.fixture(scope="module")
def tokenizer():
    from structlm.probe import load_packaged_minilm

    tok, _ = load_packaged_minilm(with_model=False)
    return tok


def roundtrip(tree) -> None:
    seq = unixcoder_sequence(tree, "paper")
    rebuilt = from_unixcoder_sequence(seq)
    assert rebuilt.signature() == tree.root.signature()
    assert unixcoder_sequence(rebuilt, "paper") == seq


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_paper_roundtrip_snippets(language):
    roundtrip(parse(SNIPPETS[language], language, strict=True))


@pytest.mark.parametrize("path", stdlib_sample(), ids=lambda p: p.name)
def test_paper_roundtrip_stdlib_sample(path):
    roundtrip(parse_quiet(path.read_bytes()))


@pytest.mark.slow
def test_paper_roundtrip_all_stdlib():
    for path in stdlib_files():
        roundtrip(parse_quiet(path.read_bytes()))


def test_paper_style_brackets_every_non_terminal():
    seq = unixcoder_sequence(parse(EXAMPLE, "python"), "paper")
    assert seq[:2] == ["AST#module#Left", "AST#function_definition#Left"]
    assert "AST#block#Left" in seq and seq[-1] == "AST#module#Right"
    n_internal = sum(1 for n in parse(EXAMPLE, "python").root.iter() if n.text is None)
    assert sum(1 for t in seq if t.endswith("#Left")) == n_internal


def test_release_style_matches_released_preprocessing():
    # the output of the released `travel` for this function (research note, section 1.2)
    expected = (
        "AST#function_definition#Left def f AST#parameters#Left ( a , b ) AST#parameters#Right : "
        "AST#return_statement#Left return AST#binary_operator#Left a + b AST#binary_operator#Right "
        "AST#return_statement#Right AST#function_definition#Right"
    )
    assert " ".join(unixcoder_sequence(parse(EXAMPLE, "python"), "release")) == expected


def test_release_style_drops_comments_and_is_lossy():
    tree = parse('def f():\n    # note\n    return "a b"\n', "python")
    release = unixcoder_sequence(tree, "release")
    assert "# note" not in release and '"a b"' in release
    assert "AST#module#Left" not in release and "AST#block#Left" not in release
    assert "# note" in unixcoder_sequence(tree, "paper")
    assert from_unixcoder_sequence(release).signature() != tree.root.signature()


def test_release_strips_hash_from_types():
    node = Node("a#b", [Node("x", text="1"), Node("y", text="2")])
    assert unixcoder_sequence(node, "release")[0] == "AST#ab#Left"
    assert unixcoder_sequence(node, "paper")[0] == "AST#a#b#Left"
    assert from_unixcoder_sequence(unixcoder_sequence(node, "paper")).type == "a#b"


def test_custom_markers_roundtrip():
    markers = Markers(left="<{type}>", right="</{type}>")
    tree = parse(SNIPPETS["java"], "java")
    seq = unixcoder_sequence(tree, markers=markers)
    assert seq[0] == "<program>" and seq[-1] == "</program>"
    assert from_unixcoder_sequence(seq, markers).signature() == tree.root.signature()


def test_marker_spelling_is_validated():
    with pytest.raises(ValueError, match="exactly once"):
        Markers(left="AST#Left")
    with pytest.raises(ValueError, match="must differ"):
        Markers(left="[{type}]", right="[{type}]")


def test_leaf_that_reads_as_marker_is_refused():
    # e.g. a leaf spelled exactly like a marker: the sequence could not be decoded unambiguously
    node = Node("module", [Node("x", text="AST#foo#Left")])
    with pytest.raises(ValueError, match="reads as a marker"):
        unixcoder_sequence(node, "paper")


def test_from_sequence_errors():
    with pytest.raises(ValueError, match="no open non-terminal"):
        from_unixcoder_sequence(["AST#a#Right"])
    with pytest.raises(ValueError, match="closes 'AST#a#Left'"):
        from_unixcoder_sequence(["AST#a#Left", "x", "AST#b#Right"])
    with pytest.raises(ValueError, match="left open"):
        from_unixcoder_sequence(["AST#a#Left", "x"])
    with pytest.raises(ValueError, match="exactly one tree"):
        from_unixcoder_sequence(["AST#a#Left", "AST#a#Right", "y"])


def test_style_is_checked():
    with pytest.raises(ValueError, match="'paper' or 'release'"):
        unixcoder_sequence(parse(EXAMPLE, "python"), "both")


def test_marker_vocabulary_and_registration(tokenizer):
    vocab = marker_vocabulary("python")
    assert "AST#function_definition#Left" in vocab and "AST#function_definition#Right" in vocab
    assert len(vocab) % 2 == 0 and len(set(vocab)) == len(vocab)
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    before = len(tok.tokenize("AST#block#Left"))
    assert before > 1
    added = add_marker_tokens(tok, "python")
    assert added == len(vocab)
    assert tok.tokenize("x AST#block#Left y") == ["x", "AST#block#Left", "y"]
    seq = unixcoder_sequence(parse(EXAMPLE, "python"), "paper", tokenizer=tok)
    assert "AST#parameters#Left" in seq and "return" in seq


def test_tokenized_leaves_release(tokenizer):
    seq = unixcoder_sequence(parse("größe = 1", "python"), "release", tokenizer=tokenizer)
    assert seq[0] == "AST#assignment#Left" and seq[-1] == "AST#assignment#Right"
    assert seq[1:-1] == tokenizer.tokenize("größe") + ["="] + ["1"]


@pytest.fixture(scope="module")
def mode_tokenizer(tokenizer):
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    assert add_unixcoder_tokens(tok) == 4
    return tok


def test_plan_requires_mode_tokens(tokenizer):
    with pytest.raises(ValueError, match="add_unixcoder_tokens"):
        unixcoder_plan(tokenizer, "x = 1", "encoder-only")


def test_encoder_only_plan(mode_tokenizer):
    tok = mode_tokenizer
    plan = unixcoder_plan(tok, "x = 1", "<encoder-only>")
    ids = plan.input_ids[0].tolist()
    body = tok.convert_tokens_to_ids(tok.tokenize("x = 1"))
    assert ids == [tok.cls_token_id, tok.convert_tokens_to_ids("<encoder-only>"), tok.sep_token_id, *body, tok.sep_token_id]
    assert bool(plan.dense_mask("bool").all())
    assert plan.position_ids[0].tolist() == list(range(len(ids)))


def test_decoder_only_plan_keeps_right_context(mode_tokenizer):
    tok = mode_tokenizer
    ids = list(range(1000, 1020))
    plan = unixcoder_plan(tok, ids, "decoder-only", max_length=10)
    got = plan.input_ids[0].tolist()
    assert got[3:] == ids[-7:] and len(got) == 10
    mask = plan.dense_mask("bool")[0, 0]
    assert torch.equal(mask, torch.tril(torch.ones(10, 10, dtype=torch.bool)))


def test_encoder_decoder_plan_masks(mode_tokenizer):
    tok = mode_tokenizer
    plan = unixcoder_plan(tok, "def f ( ) :", "encoder-decoder", target="return 1", position_offset=2)
    s0, s1 = plan.spans["source"]
    t0, t1 = plan.spans["target"]
    assert (s0, s1 - 1) == (0, t0 - 1)
    ids = plan.input_ids[0].tolist()
    assert ids[t0] == tok.convert_tokens_to_ids("<mask0>")
    assert ids[s1 - 1] == tok.sep_token_id
    mask = plan.dense_mask("bool")[0, 0]
    S, T = s1 - s0, t1 - t0
    expected = torch.zeros(S + T, S + T, dtype=torch.bool)
    expected[:S, :S] = True
    expected[S:, :S] = True
    expected[S:, S:] = torch.tril(torch.ones(T, T, dtype=torch.bool))
    assert torch.equal(mask, expected)
    assert plan.position_ids[0].tolist() == list(range(2, 2 + S + T))


def test_plan_argument_errors(mode_tokenizer):
    with pytest.raises(ValueError, match="mode must be one of"):
        unixcoder_plan(mode_tokenizer, "x", "encoder")
    with pytest.raises(ValueError, match="only exists in encoder-decoder"):
        unixcoder_plan(mode_tokenizer, "x", "encoder-only", target="y")
    with pytest.raises(ValueError, match="exceed max_length"):
        unixcoder_plan(mode_tokenizer, list(range(1000, 1010)), "encoder-decoder", target=list(range(1000, 1010)), max_length=16)
