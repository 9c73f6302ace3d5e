"""encode_corpus on a local Ray cluster: a fresh process answers over the contexts with disk hits only, and its
logits equal a from-scratch dense forward; bad input gives one clear error and leaves nothing half-written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from structlm.hf import SegmentCache, StructuredLM  # noqa: E402
from structlm.rag import demo_tokenizer, parallel  # noqa: E402
from structlm.scale import WorkerError, encode_batch, encode_corpus  # noqa: E402
from structlm.testing import tiny_llama  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONTEXTS = [f"doc{i} talks about topic{i % 3} and word{i % 5} then more words w{i}" for i in range(10)]
PREFIX = "system says answer briefly"
QUERY = "what about topic1"


def _vocab() -> list[str]:
    return CONTEXTS + [PREFIX, QUERY]


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for every scale test in the run (Ray starts slowly on 2 cores; it stops at exit)."""
    from structlm.scale import ensure_ray

    ensure_ray(num_cpus=2, progress=False)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny Llama and its tokenizer in a folder, so every worker (and a fresh process) can load them."""
    folder = tmp_path_factory.mktemp("model")
    tok = demo_tokenizer(_vocab())
    tiny_llama(vocab_size=len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


FRESH = r"""
import json, sys, torch
from structlm.hf import SegmentCache, StructuredLM
from structlm.rag import parallel
from structlm.testing import reference_forward
model, store, prefix, query, contexts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
lm = StructuredLM.from_pretrained(model, cache=SegmentCache(directory=store))
plan = parallel(lm.tokenizer, contexts, query, prefix=prefix)
got = lm.forward(plan, backend="reuse").logits
expected = reference_forward(lm.model, plan).logits
stats = lm.cache.stats()
print(json.dumps({"disk_hits": stats["disk_hits"], "misses": stats["misses"], "segments": plan.num_segments,
                  "error": (got - expected).abs().max().item()}))
"""


@pytest.fixture(scope="module")
def encoded(cluster, saved_model, tmp_path_factory):
    """The corpus encoded by two workers into one store (shared by the tests below: Ray runs cost seconds)."""
    store = tmp_path_factory.mktemp("store")
    report = encode_corpus(CONTEXTS, saved_model, store, prefix=PREFIX, num_workers=2, batch_size=3, progress=False)
    return store, report


def test_a_fresh_process_answers_from_the_store(encoded, saved_model):
    store, report = encoded
    assert (report.encoded, report.present, report.failed) == (len(CONTEXTS), 0, [])
    assert len(set(report.keys)) == len(CONTEXTS)
    assert not list(store.glob(".*.tmp"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    picked = [CONTEXTS[7], CONTEXTS[2], CONTEXTS[5]]
    out = subprocess.run([sys.executable, "-c", FRESH, str(saved_model), str(store), PREFIX, QUERY,
                          json.dumps(picked)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # every context and the prefix from disk; only the query is computed
    assert result["disk_hits"] == result["segments"] - 1 and result["misses"] == 1
    assert result["error"] < 1e-4


def test_files_as_input_and_a_run_resumed(encoded, saved_model, tmp_path):
    """JSONL and text files; contexts already in the store are present, not encoded again; empty ones fail."""
    store, _ = encoded
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_text("".join(json.dumps({"text": t, "id": i}) + "\n"
                                            for i, t in enumerate(CONTEXTS[:3] + ["doc3 talks about topic0"])))
    (corpus / "b.txt").write_text("w1 w2 w3 doc9\n\n" + CONTEXTS[4] + "\n")
    report = encode_corpus(corpus, saved_model, store, prefix=PREFIX, num_workers=1, progress=False)
    assert (report.encoded, report.present, report.failed) == (2, 4, [])


def test_datasets_as_input(cluster):
    from structlm.scale import read_contexts

    data = ray.data.from_items([{"text": "a", "id": 1}])
    assert read_contexts(data).schema().names == ["text"]
    with pytest.raises(ValueError, match="'text' column"):
        read_contexts(ray.data.from_items([{"body": "a"}]))
    with pytest.raises(TypeError, match="list of strings"):
        read_contexts(b"bytes")


def test_bad_input_is_one_clear_error_and_writes_nothing(cluster, saved_model, tmp_path):
    store = tmp_path / "store"
    with pytest.raises(FileNotFoundError, match="no such file"):
        encode_corpus(tmp_path / "missing.jsonl", saved_model, store, progress=False)
    with pytest.raises(ValueError, match="corpus is empty"):
        encode_corpus([], saved_model, store, progress=False)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="corpus is empty"):
        encode_corpus(tmp_path / "empty.jsonl", saved_model, store, progress=False)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        encode_corpus(CONTEXTS, tmp_path / "nowhere", store, progress=False)
    broken = tmp_path / "broken"  # a config the driver reads, weights no worker can load
    broken.mkdir()
    for name in os.listdir(saved_model):
        if not name.endswith(".safetensors"):
            (broken / name).write_bytes((saved_model / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(WorkerError, match="could not load model"):
        encode_corpus(CONTEXTS[:2], broken, store, num_workers=1, progress=False)
    assert not store.exists() or not [p for p in store.iterdir()]


def test_encode_batch_matches_the_parallel_plan_without_ray(saved_model, tmp_path):
    """The worker's step on its own: its keys are the ones a parallel() plan over any subset looks up."""
    lm = StructuredLM.from_pretrained(str(saved_model), cache=SegmentCache(directory=tmp_path))
    rows = encode_batch(lm, CONTEXTS[:3] + ["", CONTEXTS[0]], prefix=PREFIX)
    assert [r["status"] for r in rows] == ["encoded"] * 3 + ["failed", "present"]
    assert rows[3]["reason"] == "empty after tokenization"
    reader = StructuredLM.from_pretrained(str(saved_model), cache=SegmentCache(directory=tmp_path))
    state = reader.prefill(parallel(reader.tokenizer, [CONTEXTS[2], CONTEXTS[0]], QUERY, prefix=PREFIX))
    assert state.keys["context0"] == rows[2]["key"] and state.keys["context1"] == rows[0]["key"]
    assert reader.cache.disk_hits == 3
