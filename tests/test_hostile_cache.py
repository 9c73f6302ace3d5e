"""Hostile cache files: truncated, bit flips, a foreign safetensors file, a file from another model, a renamed entry,
a directory where a file should be, a damaged store manifest — each the specific error, never a crash, a hang or a
wrong result. Also: the memory budget holds under random put/get workloads."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from structlm.hf import CacheError, CacheMismatchError, CorruptCacheError, SegmentCache, StructuredLM
from structlm.hf.cache import CacheEntry, model_fingerprint
from structlm.hf.store import MANIFEST
from tests.test_runtime import ladder_plan, model

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-6


class Store:
    """A store written once by the tiny Llama on the ladder plan; each example damages a fresh copy."""

    def __init__(self) -> None:
        self.model = model("llama")
        self.fingerprint = model_fingerprint(self.model)
        self.folder = Path(tempfile.mkdtemp(prefix="structlm-hostile-"))
        atexit.register(shutil.rmtree, self.folder, True)
        lm = StructuredLM(self.model, cache=SegmentCache(directory=self.folder))
        self.expected = lm.forward(ladder_plan(), backend="reuse").logits
        self.files = sorted(p.name for p in self.folder.glob("*.safetensors"))
        assert len(self.files) == 5

    def copy(self) -> Path:
        target = Path(tempfile.mkdtemp(prefix="structlm-hostile-"))
        shutil.copytree(self.folder, target, dirs_exist_ok=True)
        return target

    def run(self, folder: Path) -> torch.Tensor:
        lm = StructuredLM(self.model, cache=SegmentCache(directory=folder, fingerprint=self.fingerprint))
        return lm.forward(ladder_plan(), backend="reuse").logits


_STORE: list[Store] = []


def store() -> Store:
    if not _STORE:
        _STORE.append(Store())
    return _STORE[0]


def check(folder: Path, error: type, message: str) -> None:
    """A forward over the damaged copy raises ``error`` matching ``message`` (no crash, no other numbers)."""
    s = store()
    try:
        with pytest.raises(error, match=message):
            s.run(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@SETTINGS
@given(st.integers(0, 4), st.floats(0, 1, exclude_max=True))
def test_truncated_entry(which, fraction):
    s = store()
    folder = s.copy()
    path = folder / s.files[which]
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    check(folder, CorruptCacheError, "is corrupt or not a safetensors file.*delete it")


def _header_end(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


@pytest.mark.parametrize("region", ["tensor data", "anywhere"])
@SETTINGS
@given(which=st.integers(0, 4), data=st.data())
def test_a_flipped_bit(region, which, data):
    """In the tensor data, only the digest can tell (safetensors checks the header); anywhere else the header
    check, the format check or the digest (which covers the metadata) names it — never a mismatch of models."""
    s = store()
    folder = s.copy()
    path = folder / s.files[which]
    raw = bytearray(path.read_bytes())
    low = _header_end(raw) if region == "tensor data" else 0
    raw[data.draw(st.integers(low, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    path.write_bytes(bytes(raw))
    message = "fails its digest check.*delete it" if region == "tensor data" else \
        "corrupt or not a safetensors file|fails its digest check|not a structlm segment cache"
    check(folder, CorruptCacheError, message)


_DTYPES = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8])


@SETTINGS
@given(st.integers(0, 4), st.dictionaries(st.text("abkv0123", min_size=1, max_size=4), st.tuples(
    _DTYPES, st.lists(st.integers(0, 3), max_size=3)), min_size=1, max_size=4),
    st.dictionaries(st.sampled_from(["format", "version", "layers", "x"]), st.text(max_size=6), max_size=3))
def test_a_foreign_safetensors_file(which, tensors, metadata):
    s = store()
    folder = s.copy()
    made = {name: torch.zeros(shape, dtype=dtype) for name, (dtype, shape) in tensors.items()}
    save_file(made, str(folder / s.files[which]), metadata=metadata)
    check(folder, CorruptCacheError, "is not a structlm segment cache of version 2.*delete it")


@settings(max_examples=5, deadline=None)
@given(st.sampled_from(["qwen2", "gemma2", "llama-reseeded"]))
def test_a_file_from_another_model(other):
    s = store()
    folder = s.copy()
    foreign_model = model(other) if other != "llama-reseeded" else _reseeded_llama()
    foreign = Path(tempfile.mkdtemp(prefix="structlm-hostile-"))
    StructuredLM(foreign_model, cache=SegmentCache(directory=foreign)).forward(ladder_plan(), backend="reuse")
    # another model's entry, renamed to this model's key (a store assembled by hand, a bad sync)
    theirs = sorted(foreign.glob("*.safetensors"))[0]
    shutil.copy(theirs, folder / s.files[0])
    shutil.rmtree(foreign)
    check(folder, CacheMismatchError, "made by another model.*its own cache directory")


def _reseeded_llama():
    from structlm.testing import tiny_model

    return tiny_model("llama", seed=7)


@SETTINGS
@given(st.integers(0, 4), st.integers(1, 4))
def test_an_entry_renamed_over_another(which, shift):
    s = store()
    folder = s.copy()
    shutil.copy(folder / s.files[(which + shift) % 5], folder / s.files[which])
    check(folder, CorruptCacheError, "holds the entry .*, not .*renamed or copied")


@SETTINGS
@given(st.integers(0, 4), st.booleans())
def test_a_directory_where_a_file_should_be(which, on_write):
    s = store()
    folder = s.copy()
    path = folder / s.files[which]
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("x")
    if on_write:  # a cache that only writes (no lookup) meets the directory when saving
        cache = SegmentCache(directory=folder, fingerprint=s.fingerprint)
        entry = CacheEntry(keys=[torch.zeros(1, 1, 2, 4)], values=[torch.zeros(1, 1, 2, 4)], hidden=None,
                           positions=torch.arange(2))
        with pytest.raises(CorruptCacheError, match="a directory is in its place; remove it"):
            cache.put(path.stem, entry)
        shutil.rmtree(folder)
        return
    check(folder, CorruptCacheError, "is a directory, not a file; remove it")


@SETTINGS
@given(st.sampled_from(["truncate", "garbage", "directory", "other model"]), st.binary(max_size=40))
def test_a_damaged_store_manifest(damage, garbage):
    s = store()
    folder = s.copy()
    manifest = folder / MANIFEST
    text = manifest.read_text()
    if damage == "truncate":
        manifest.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        manifest.write_bytes(b"\x00" + garbage)
    elif damage == "directory":
        manifest.unlink()
        manifest.mkdir()
    else:
        manifest.write_text(text.replace(s.fingerprint, "f" * 24))
    expected = (CacheMismatchError, "belongs to another model") if damage == "other model" else (
        CorruptCacheError, "store manifest .* is unreadable .*; delete it")
    check(folder, *expected)


def test_a_file_as_the_store_folder(tmp_path):
    path = tmp_path / "store"
    path.write_text("not a folder")
    with pytest.raises(CacheError, match="is a file; pass a folder"):
        SegmentCache(directory=path)


def test_undamaged_copies_load_exactly():
    s = store()
    folder = s.copy()
    lm = StructuredLM(s.model, cache=SegmentCache(directory=folder))
    assert torch.allclose(lm.forward(ladder_plan(), backend="reuse").logits, s.expected, atol=TOL)
    assert lm.cache.disk_hits == 5 and lm.cache.misses == 0
    shutil.rmtree(folder)


# --------------------------------------------------------------------------------------------- budget
def _entry(nbytes: int, content: int) -> CacheEntry:
    """An entry of about ``nbytes`` (positions of 8 bytes each plus one float32 key and value)."""
    length = max(1, nbytes // 16)
    return CacheEntry(keys=[torch.full((1, 1, length, 1), float(content))],
                      values=[torch.full((1, 1, length, 1), float(content))], hidden=None,
                      positions=torch.arange(length))


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 4000), st.lists(st.tuples(st.sampled_from(["put", "get"]), st.integers(0, 11),
                                                st.integers(1, 3000), st.booleans()), max_size=60))
def test_memory_budget_holds_under_random_workloads(max_bytes, operations):
    cache = SegmentCache(max_bytes=max_bytes)
    last_put: dict[str, float] = {}
    for op, key_id, size, with_content in operations:
        key = f"k{key_id}"
        if op == "put":
            cache.put(key, _entry(size, key_id * 1000 + size), content_key=f"c{key_id}" if with_content else None)
            last_put[key] = key_id * 1000 + size
            fits = _entry(size, 0).nbytes <= max_bytes
            assert (key in cache) == fits  # a fitting entry is kept (the newest), a larger one never
        else:
            entry = cache.get(key)
            if entry is not None:  # what comes back is what was put last under that key
                assert float(entry.keys[0].flatten()[0]) == last_put[key]
        held = list(cache._entries.values())
        assert cache.nbytes == sum(e.nbytes for e in held) <= max_bytes
        assert all(e.nbytes <= max_bytes for e in held)
        for content_key, key_held in cache._by_content.items():
            assert key_held in cache._entries
    assert cache.hits + cache.misses == sum(op == "get" for op, *_ in operations)


def test_budget_evicts_the_least_recently_used():
    cache = SegmentCache(max_bytes=3 * _entry(160, 0).nbytes)
    for i in range(3):
        cache.put(f"k{i}", _entry(160, i))
    cache.get("k0")  # k1 is now the least recently used
    cache.put("k3", _entry(160, 3))
    assert "k1" not in cache and all(f"k{i}" in cache for i in (0, 2, 3))
