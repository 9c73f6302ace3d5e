"""The shared segment store under concurrency, across processes (not only Ray): writers lose nothing, a writer
killed with SIGKILL mid-write leaves only loadable entries, a store of another model is refused, size bounded."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from structlm.errors import CacheMismatchError
from structlm.hf import SegmentCache, StructuredLM
from structlm.hf.store import MANIFEST, claim_store, prune_store, store_stats
from structlm.testing import tiny_llama

ROOT = Path(__file__).resolve().parents[1]

WRITER = r"""
import json, os, sys, time
import torch
torch.set_num_threads(1)
from structlm.hf import SegmentCache, StructuredLM
from structlm.rag import demo_tokenizer
from structlm.scale.encoder import encode_batch
from structlm.testing import tiny_llama
store, first, last, victim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
texts = [f"doc {i} says w{i % 7} and w{i % 11} then w{i % 13}" for i in range(70)]
tok = demo_tokenizer(texts + ["sys prompt"])
lm = StructuredLM(tiny_llama(vocab_size=len(tok)), tokenizer=tok, cache=SegmentCache(max_bytes=0, directory=store))
if victim:  # write half a file, say so, then hang until killed: a writer dying inside save_file
    import safetensors.torch as st
    real = st.save_file
    def half(tensors, path, metadata=None):
        real(tensors, path, metadata=metadata)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
        ready = os.path.join(store, "..", "victim-ready")
        with open(ready + ".tmp", "w") as f:  # renamed into place: the test never reads a half-written path
            f.write(path)
        os.replace(ready + ".tmp", ready)
        time.sleep(600)
    st.save_file = half
keys = []
for start in range(first, last, 5):
    rows = encode_batch(lm, texts[start:min(start + 5, last)], prefix="sys prompt")
    keys += [r["key"] for r in rows if r["status"] != "failed"]
print(json.dumps(keys))
"""


def _writer(store: Path, first: int, last: int, victim: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(first), str(last), "1" if victim else "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_three_writers_one_killed_mid_write(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    # the two survivors overlap (they race on 20..39); the victim's texts are its own, so it always has a file to write
    writers = [_writer(store, 0, 40), _writer(store, 20, 60), _writer(store, 60, 70, victim=True)]
    ready = tmp_path / "victim-ready"
    deadline = time.time() + 90
    while not ready.exists() and time.time() < deadline and writers[2].poll() is None:
        time.sleep(0.05)
    assert ready.exists(), writers[2].communicate()[1][-2000:]
    os.kill(writers[2].pid, signal.SIGKILL)
    writers[2].wait()
    half = Path(ready.read_text())
    assert half.exists() and half.name.startswith(".") and half.suffix == ".tmp"  # killed with half a file
    outputs = [w.communicate(timeout=120) for w in writers[:2]]
    for (out, err), w in zip(outputs, writers[:2]):
        assert w.returncode == 0, err[-2000:]
    expected = set(json.loads(outputs[0][0])) | set(json.loads(outputs[1][0]))
    entries = {p.name.removesuffix(".safetensors") for p in store.glob("*.safetensors")}
    assert expected <= entries  # nothing lost
    reader = SegmentCache(directory=store)
    fingerprint = json.loads((store / MANIFEST).read_text())["fingerprint"]
    reader.bind(fingerprint)
    for key in entries:  # every entry is whole: the half file never became one
        assert reader.get(key) is not None
    assert prune_store(store, max_bytes=10**12, stray_after=0)["temporaries"] >= 1
    assert not half.exists() and store_stats(store)["entries"] == len(entries)


def test_a_store_of_another_model_is_refused(tmp_path):
    StructuredLM(tiny_llama(vocab_size=40), cache=SegmentCache(directory=tmp_path))
    assert json.loads((tmp_path / MANIFEST).read_text())["fingerprint"]
    with pytest.raises(CacheMismatchError, match="belongs to another model"):
        StructuredLM(tiny_llama(vocab_size=40, seed=1), cache=SegmentCache(directory=tmp_path))
    StructuredLM(tiny_llama(vocab_size=40), cache=SegmentCache(directory=tmp_path))  # its own model: fine


def test_racing_claims_agree_on_one_owner(tmp_path):
    """Of many processes claiming one empty folder for two models, one model wins and the others are refused."""
    script = ("import sys; from structlm.hf.store import claim_store\n"
              "try:\n    claim_store(sys.argv[1], sys.argv[2], 'f', '1'); print('ok')\n"
              "except Exception as e:\n    print(type(e).__name__)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"model{i % 2}"], stdout=subprocess.PIPE,
                              text=True, env=env) for i in range(6)]
    results = [(i % 2, p.communicate(timeout=60)[0].strip()) for i, p in enumerate(procs)]
    winner = json.loads((tmp_path / MANIFEST).read_text())["fingerprint"]
    for model, result in results:
        assert result == ("ok" if f"model{model}" == winner else "CacheMismatchError")
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(CacheMismatchError):
        claim_store(tmp_path, "model-other", "f", "1")


def test_prune_bounds_the_size_oldest_first(tmp_path):
    from structlm.rag import demo_tokenizer, parallel

    texts = [f"c{i} a b" for i in range(6)]
    tok = demo_tokenizer(texts + ["q"])
    lm = StructuredLM(tiny_llama(vocab_size=len(tok)), tokenizer=tok, cache=SegmentCache(directory=tmp_path))
    for i, text in enumerate(texts):
        lm.prefill(parallel(tok, [text], "q"))
    before = store_stats(tmp_path)
    oldest = min(tmp_path.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
    result = prune_store(tmp_path, max_bytes=before["bytes"] // 2)
    after = store_stats(tmp_path)
    assert result["removed"] > 0 and after["bytes"] <= before["bytes"] // 2 and not oldest.exists()
    with pytest.raises(ValueError, match="max_bytes"):
        prune_store(tmp_path, -1)
    fresh = StructuredLM(lm.model, tokenizer=tok, cache=SegmentCache(directory=tmp_path))
    fresh.forward(parallel(tok, texts, "q"), backend="reuse")  # pruned entries are misses, encoded again
    assert fresh.cache.misses > 0
