"""layer_features across Ray workers: shards equal to the probe's own features, and probe_layers trains from
them without the model."""
from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")

from structlm.probe import collect_functions, load_packaged_minilm, make_examples, probe_layers  # noqa: E402
from structlm.probe.data import layer_features as local_features  # noqa: E402
from structlm.probe.features import load_features  # noqa: E402
from structlm.scale import layer_features  # noqa: E402
from tests.test_scale_corpus import cluster  # noqa: E402,F401

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def snippets():
    return collect_functions([STDLIB / "bisect.py", STDLIB / "heapq.py", STDLIB / "colorsys.py"], progress=False)[:24]


@pytest.mark.slow  # two Ray actors each loading MiniLM: ~15 s on 2 shared cores
def test_features_from_workers_train_the_probe(cluster, snippets, tmp_path):  # noqa: F811
    tokenizer, model = load_packaged_minilm()
    out = tmp_path / "features"
    manifest = layer_features(snippets, "all-minilm-l6-v2", [0, 3], out, max_length=160, num_workers=2,
                              batch_size=6, progress=False)
    examples, _ = make_examples(snippets, tokenizer, max_length=160)
    assert manifest["count"] == len(examples) >= 12 and len(manifest["shards"]) >= 2
    assert json.loads((out / "features.json").read_text())["layers"] == [0, 3]
    assert not list(out.glob(".*.tmp"))
    stored = load_features(out, examples=examples)
    expected = local_features(model, examples, [0, 3], progress=False)
    for layer in (0, 3):
        for got, want in zip(stored[layer], expected[layer]):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    table = probe_layers(None, snippets, tokenizer=tokenizer, max_length=160, features=out, epochs=1, rank=8,
                         batch_size=8, progress=False, name="m")
    assert [r.layer for r in table.rows] == [0, 3]
    with pytest.raises(ValueError, match="other snippets"):
        load_features(out, examples=examples[1:])
    with pytest.raises(ValueError, match="layers \\[5\\]"):
        load_features(out, layers=[5])
    with pytest.raises(FileExistsError, match="already holds features"):
        layer_features(snippets, "all-minilm-l6-v2", [0], out, progress=False)
    with pytest.raises(FileNotFoundError, match="not a finished"):
        load_features(tmp_path)


def test_bad_model_and_layers(snippets, tmp_path):
    with pytest.raises(ValueError, match="out of range"):
        layer_features(snippets, "all-minilm-l6-v2", [9], tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="no snippets"):
        layer_features([], "all-minilm-l6-v2", [0], tmp_path / "b", progress=False)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        layer_features(snippets, tmp_path / "nowhere", [0], tmp_path / "c", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_a_workers_shard_holds_the_probes_own_features(snippets, tmp_path):
    """What each Ray actor runs, in-process: one batch becomes one whole shard of the probe's own vectors."""
    import numpy as np
    from safetensors.torch import load_file

    from structlm.scale.features import FeatureWorker

    tokenizer, model = load_packaged_minilm()
    examples, _ = make_examples(snippets[:6], tokenizer, max_length=160)
    worker = FeatureWorker("all-minilm-l6-v2", [0, 2], str(tmp_path))
    batch = {"index": np.arange(len(examples)), "input_ids": [np.asarray(e.input_ids) for e in examples],
             "word_index": [np.asarray(e.word_index) for e in examples],
             "n_tokens": np.asarray([len(e.tuple.tokens) for e in examples])}
    out = worker(batch)
    assert len(set(out["shard"])) == 1 and not any(out["error"]) and not list(tmp_path.glob(".*.tmp"))
    stored = load_file(str(tmp_path / out["shard"][0]))
    expected = local_features(model, examples, [0, 2], progress=False)
    for i in range(len(examples)):
        for layer in (0, 2):
            torch.testing.assert_close(stored[f"{i}/{layer}"], expected[layer][i], atol=1e-4, rtol=1e-4)
    broken = FeatureWorker(str(tmp_path / "nowhere"), [0], str(tmp_path))
    assert broken(batch)["error"][0]
