"""AST-Probe on real hidden states: the probe's pieces, a small training run on MiniLM, the CLI."""
from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
import torch

from structlm.code import ast_tuple, parse
from structlm.code.ast import EMPTY
from structlm.probe import (
    ASTProbe,
    ProbeTable,
    collect_functions,
    evaluate_probe,
    label_sets,
    layer_features,
    load_packaged_minilm,
    make_examples,
    probe_layers,
    random_weights_copy,
    train_probe,
)
from structlm.probe.data import _pool

STDLIB = Path(sysconfig.get_paths()["stdlib"])
# a fixed handful of stdlib modules: about 150 functions of ordinary Python
SMALL_SOURCES = [STDLIB / name for name in ("json/decoder.py", "json/encoder.py", "textwrap.py", "string.py", "shlex.py",
                                           "fnmatch.py", "colorsys.py", "bisect.py", "heapq.py", "calendar.py",
                                           "difflib.py", "ipaddress.py")]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small ops on a shared 2-core machine: OpenMP threads spin-wait for each other (DESIGN: timing on 2
    cores), so these tests run single-threaded and restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def minilm():
    return load_packaged_minilm()


@pytest.fixture(scope="module")
def examples(minilm):
    tokenizer, _ = minilm
    snippets = collect_functions(SMALL_SOURCES, progress=False)
    found, skipped = make_examples(snippets, tokenizer, max_length=160)
    assert len(found) >= 150, skipped
    return found[:180]


def test_probe_shapes_and_parameter_count():
    probe = ASTProbe(384, 64, c_labels=["a", "b", EMPTY], u_labels=[EMPTY, "x"])
    assert sum(p.numel() for p in probe.parameters()) == 384 * 64 + 64 * (3 + 2)
    d_hat, c_logits, u_logits = probe(torch.randn(2, 7, 384))
    assert d_hat.shape == (2, 6) and c_logits.shape == (2, 6, 3) and u_logits.shape == (2, 7, 2)
    assert bool((d_hat >= 0).all())
    with pytest.raises(ValueError, match="<empty>"):
        ASTProbe(8, 4, c_labels=["a"], u_labels=["x"])


def test_orthogonality_penalty_vanishes_on_orthonormal_projection():
    probe = ASTProbe(16, 4, c_labels=[EMPTY], u_labels=[EMPTY])
    with torch.no_grad():
        probe.proj.copy_(torch.linalg.qr(torch.randn(16, 4))[0])
    assert probe.orthogonality_penalty().item() == pytest.approx(0.0, abs=1e-10)


def test_distance_hinge_is_zero_when_ranking_has_margin():
    t = ast_tuple(parse("x = a + b * c\n", "python"))
    n = len(t.tokens)
    c_labels, u_labels = label_sets([t])
    probe = ASTProbe(n, n, c_labels=c_labels, u_labels=u_labels, orthogonality=0.0)
    with torch.no_grad():
        probe.proj.copy_(torch.eye(n))
    # each step moves along a fresh axis by sqrt(10 d_i): consecutive squared distances are exactly 10 d_i,
    # so every ordered pair d_i > d_j is separated by at least 10 > the hinge margin 1
    hidden = torch.zeros(1, n, n)
    for i, d in enumerate(t.d):
        hidden[0, i + 1] = hidden[0, i]
        hidden[0, i + 1, i + 1] = (10 * d) ** 0.5
    d_hat, _, _ = probe(hidden)
    assert torch.allclose(d_hat[0], 10 * torch.tensor(t.d, dtype=torch.float32), atol=1e-4)
    losses = probe.loss(hidden, [t], with_penalty=False)
    assert losses["d"].item() == 0.0
    assert set(losses) == {"d", "c", "u", "total"}
    assert losses["total"].item() == pytest.approx(sum(losses[k].item() for k in "dcu"), rel=1e-6)
    # reversing the ranking makes the hinge positive
    flipped = torch.zeros(1, n, n)
    for i, d in enumerate(t.d):
        flipped[0, i + 1] = flipped[0, i]
        flipped[0, i + 1, i + 1] = (10 * (max(t.d) + 1 - d)) ** 0.5
    assert probe.loss(flipped, [t], with_penalty=False)["d"].item() > 1.0


def test_pooling_is_the_mean_of_subwords():
    hidden = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    index = torch.tensor([-1, 0, 0, 1, 2, -1])
    pooled = _pool(hidden, index, 3)
    assert torch.equal(pooled, torch.tensor([[3.0, 4.0], [6.0, 7.0], [8.0, 9.0]]))
    stacked = _pool(torch.stack([hidden, 2 * hidden]), index, 3)
    assert torch.equal(stacked[1], 2 * pooled)


def test_random_weights_copy_keeps_embeddings_only(minilm):
    _, model = minilm
    rand = random_weights_copy(model, seed=0)
    assert torch.equal(rand.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight)
    assert torch.equal(rand.embeddings.position_embeddings.weight, model.embeddings.position_embeddings.weight)
    a = dict(model.named_parameters())["encoder.layer.0.attention.self.query.weight"]
    b = dict(rand.named_parameters())["encoder.layer.0.attention.self.query.weight"]
    assert not torch.equal(a, b)


def test_layer_features_align_with_tokens(minilm, examples):
    _, model = minilm
    feats = layer_features(model, examples[:5], [0, 6], progress=False)
    for ex, f0, f6 in zip(examples[:5], feats[0], feats[6]):
        assert f0.shape == f6.shape == (len(ex.tuple.tokens), 384)
    # features do not depend on the batch they were computed in (padding is masked)
    alone = layer_features(model, examples[2:3], [6], progress=False)[6][0]
    assert torch.allclose(alone, feats[6][2], atol=1e-4)
    with pytest.raises(ValueError, match="out of range"):
        layer_features(model, examples[:1], [7], progress=False)


def test_small_run_loss_falls_and_beats_random_weights(minilm, examples):
    """Layer 3 of MiniLM vs layer 3 of the same architecture with random weights, same split."""
    _, model = minilm
    tuples = [ex.tuple for ex in examples]
    c_labels, u_labels = label_sets(tuples)
    train, valid, test = slice(0, 120), slice(120, 140), slice(140, None)
    scores = {}
    for name, net in (("trained", model), ("random", random_weights_copy(model, seed=0))):
        feats = layer_features(net, examples, [3], progress=False)[3]
        probe, history = train_probe(feats[train], tuples[train], feats[valid], tuples[valid], c_labels=c_labels,
                                     u_labels=u_labels, rank=64, epochs=8, batch_size=8, progress=False)
        assert history[-1]["train_loss"] < history[0]["train_loss"] / 2
        if name == "trained":  # on random features the validation loss may not improve after epoch 0
            assert min(h["valid_loss"] for h in history[1:]) < history[0]["valid_loss"] * 0.8
        scores[name] = evaluate_probe(probe, feats[test], tuples[test])
    assert scores["trained"]["snippets"] == len(tuples[test])
    assert scores["trained"]["f1"] > scores["random"]["f1"] + 0.03, scores


def test_probe_layers_table_and_plot(minilm, examples, tmp_path):
    _, model = minilm
    table = probe_layers(model, examples[:40], [0, 1], epochs=2, batch_size=8, rank=16, progress=False, name="m")
    assert [(r.model, r.layer) for r in table.rows] == [("m", 0), ("m", 1)]
    assert all(0.0 <= r.f1 <= 1.0 and r.snippets == 8 for r in table.rows)
    assert table.to_markdown().splitlines()[2].startswith("| m | 0 |")
    png = table.plot(tmp_path / "f1.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '"layer": 1' in table.to_json()
    assert isinstance(table, ProbeTable) and table.best().layer in (0, 1)


def test_probe_layers_errors(minilm, examples):
    tokenizer, model = minilm
    with pytest.raises(ValueError, match="tokenizer="):
        probe_layers(model, ["def f():\n    return 1\n"] * 5)
    with pytest.raises(ValueError, match="usable snippets"):
        probe_layers(model, ["def f(:\n"] * 5, tokenizer=tokenizer)
    with pytest.raises(FileNotFoundError, match="no such file"):
        collect_functions("/nonexistent/dir", progress=False)


def test_cli_probe_help_and_error(capsys):
    from structlm.cli import main

    with pytest.raises(SystemExit) as info:
        main(["probe", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--language", "--source", "--layers", "--out"):
        assert flag in out
    assert main(["probe", "--source", "/nonexistent/dir", "--quiet"]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_probe_small_run(tmp_path, capsys):
    from structlm.cli import main

    code = main(["probe", "--source", str(STDLIB / "json"), "--snippets", "30", "--layers", "0", "3",
                 "--epochs", "2", "--batch-size", "8", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    assert (tmp_path / "probe.png").exists() and (tmp_path / "probe.md").exists()
    assert "random weights" in (tmp_path / "probe.md").read_text()


def test_make_examples_filters_and_counts(minilm):
    tokenizer, _ = minilm
    snippets = [
        "def f(x):\n    return x + 1\n",  # kept
        "def f(:\n    pass\n",  # syntax error
        '"""only a docstring"""\n',  # nothing left after preprocessing
        "def g(a):\n    return " + " + ".join(["a"] * 200) + "\n",  # over max_length sub-words
    ]
    found, skipped = make_examples(snippets, tokenizer, max_length=128)
    assert [ex.source for ex in found] == ["def f(x):\n    return x + 1"]
    assert skipped == {"syntax": 1, "too_long": 1, "too_short": 1, "alignment": 0}
