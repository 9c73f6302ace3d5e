"""SegmentCache: content-addressed per-segment keys and values, reused across plans and requests.

A segment's keys and values depend only on its tokens, positions and intra rule, and on the segments it sees
(recursively). So the cache key is a hash of the model fingerprint, those, and the keys of the seen segments:
a context encoded for one query is found again by the next plan that holds the same context, at the same
positions, seeing the same things.

Memory: an LRU with a byte budget. Disk (optional): one safetensors file per segment, written atomically;
a file from another model or a corrupt file is refused with a clear error, never loaded silently, and the
folder is claimed by one model (:mod:`structlm.hf.store`: shared stores, their size).

Integrity: safetensors checks a file's header, not its data, so a flipped bit inside a tensor would load
silently and give wrong numbers. Each file's metadata therefore holds a SHA-256 digest of its metadata and of
every tensor's name, dtype, shape and raw bytes (:func:`entry_digest`), checked on every load; a mismatch raises
:class:`CorruptCacheError`. Files of version 1 (written before digests) have other keys, so they are never found.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import torch

from structlm.errors import CacheError, CacheMismatchError, CorruptCacheError

__all__ = ["CacheEntry", "SegmentCache", "model_fingerprint", "segment_key", "entry_digest", "CACHE_FORMAT"]

CACHE_FORMAT = "structlm.segment_kv"
CACHE_VERSION = "2"  # 2: every file carries a digest of its contents


def _tensor_digest(hasher, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().to("cpu").contiguous()
    hasher.update(str(tensor.dtype).encode())
    hasher.update(str(tuple(tensor.shape)).encode())
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    hasher.update(tensor.numpy().tobytes())


def entry_digest(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """``"sha256:<hex>"`` over ``metadata`` (its ``digest`` field aside) and every tensor's name, dtype, shape and
    raw bytes, in name order: what a cache file stores and what a load recomputes (about 1 GB/s on one core)."""
    hasher = hashlib.sha256()
    hasher.update(json.dumps(sorted((k, v) for k, v in metadata.items() if k != "digest")).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous().reshape(-1)
        hasher.update(f"\n{name}|{tensor.dtype}|{tuple(tensors[name].shape)}\n".encode())
        hasher.update(tensor.view(torch.uint8).numpy())  # the raw bytes, without a copy
    return "sha256:" + hasher.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the model's config, dtype and a sample of every weight.

    Weights are sampled (first and last 32 values of each parameter) so fingerprinting a large model is cheap
    yet two random initialisations of one config never collide.
    """
    hasher = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        data = config.to_dict()
        for volatile in ("_attn_implementation", "_attn_implementation_autoset", "transformers_version",
                         "_name_or_path", "attn_implementation", "output_hidden_states", "use_cache",
                         "architectures"):  # set by save_pretrained: a reloaded model keeps its store
            data.pop(volatile, None)
        hasher.update(json.dumps(data, sort_keys=True, default=str).encode())
    from structlm.hf.offload import named_weights

    for name, param in named_weights(model):  # offloaded (meta) weights are read from accelerate's hooks
        hasher.update(name.encode())
        flat = param.detach().reshape(-1)
        sample = torch.cat([flat[:32], flat[-32:]]) if flat.numel() > 64 else flat
        _tensor_digest(hasher, sample.float())
        hasher.update(str(tuple(param.shape)).encode())
        hasher.update(str(param.dtype).encode())
    return hasher.hexdigest()[:24]


def segment_key(
    fingerprint: str,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    causal: bool,
    seen_keys: Iterable[str],
    *,
    include_positions: bool = True,
    token_type: int | None = None,
) -> str:
    """Content address of a segment's keys and values (see the module docstring).

    ``include_positions=False`` gives the position-free address used for re-positioned reuse; a segment's
    ``token_type`` (when it has one) changes its states, so it is part of the address.
    """
    hasher = hashlib.sha256()
    hasher.update(f"{CACHE_FORMAT}/{CACHE_VERSION}/{fingerprint}/{'causal' if causal else 'full'}".encode())
    _tensor_digest(hasher, tokens)
    if include_positions:
        _tensor_digest(hasher, positions)
    else:
        hasher.update(str(positions.numel()).encode())
    if token_type is not None:
        hasher.update(f"/type{token_type}".encode())
    for key in seen_keys:
        hasher.update(b"|" + key.encode())
    return hasher.hexdigest()[:40]


@dataclass
class CacheEntry:
    """One segment's per-layer keys/values ``[1, Hkv, L, D]`` (rotary applied), its final hidden states
    ``[L, H]`` (before the LM head) and the positions they were computed at."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    hidden: torch.Tensor | None
    positions: torch.Tensor
    meta: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of keys, values, hidden states and positions."""
        total = sum(t.numel() * t.element_size() for t in self.keys + self.values)
        if self.hidden is not None:
            total += self.hidden.numel() * self.hidden.element_size()
        return total + self.positions.numel() * self.positions.element_size()

    def __len__(self) -> int:
        return self.positions.numel()


class SegmentCache:
    """Content-addressed store of per-segment KV: an in-memory LRU with a byte budget, optionally on disk.

    >>> cache = SegmentCache(max_bytes=2**30, directory="kv_store")   # doctest: +SKIP
    >>> lm = StructuredLM(model, cache=cache)                          # doctest: +SKIP
    """

    def __init__(self, max_bytes: int = 2**30, directory: str | os.PathLike | None = None,
                 fingerprint: str | None = None) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            if self.directory.exists() and not self.directory.is_dir():
                raise CacheError(f"cache directory {self.directory} is a file; pass a folder (it is created if "
                                 f"missing)")
            self.directory.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._by_content: dict[str, str] = {}  # position-free key -> positioned key
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0
        self.moved_hits = 0

    # ----------------------------------------------------------------------------------------- binding
    def bind(self, fingerprint: str) -> None:
        """Tie the cache to one model; a cache made by another model is refused."""
        if self.fingerprint is not None and self.fingerprint != fingerprint:
            raise CacheMismatchError(
                f"this SegmentCache holds keys and values of another model (fingerprint {self.fingerprint}, "
                f"this model is {fingerprint}); give each model its own SegmentCache"
            )
        if self.directory is not None:  # a store on disk belongs to one model (structlm.hf.store)
            from structlm.hf.store import claim_store

            claim_store(self.directory, fingerprint, CACHE_FORMAT, CACHE_VERSION)
        self.fingerprint = fingerprint

    # ----------------------------------------------------------------------------------------- lookups
    def get(self, key: str) -> CacheEntry | None:
        """The entry under ``key`` from memory, else from the directory store; counts a hit or a miss."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry
        entry = self._load(key)
        if entry is not None:
            self.hits += 1
            self.disk_hits += 1
            self._remember(key, entry)
            return entry
        self.misses += 1
        return None

    def count_moved_hit(self) -> None:
        """A re-positioned entry served the lookup that just missed: count it as a hit, not a miss."""
        self.misses -= 1
        self.hits += 1
        self.moved_hits += 1

    def get_by_content(self, content_key: str) -> CacheEntry | None:
        """An entry with the same content computed at other positions (for re-positioned reuse)."""
        key = self._by_content.get(content_key)
        if key is None or key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key]

    def __contains__(self, key: str) -> bool:
        return key in self._entries or (self.directory is not None and self._path(key).exists())

    def put(self, key: str, entry: CacheEntry, content_key: str | None = None) -> None:
        """Store an entry in memory (LRU within the byte budget) and, with a directory, on disk atomically."""
        entry = CacheEntry(
            keys=[k.detach() for k in entry.keys],
            values=[v.detach() for v in entry.values],
            hidden=None if entry.hidden is None else entry.hidden.detach(),
            positions=entry.positions.detach().cpu(),
            meta=dict(entry.meta),
        )
        if content_key is not None:
            entry.meta["content_key"] = content_key
        self._remember(key, entry)
        if self.directory is not None:
            self._save(key, entry)

    def _remember(self, key: str, entry: CacheEntry) -> None:
        if key in self._entries:
            self._forget(key)
        if entry.nbytes > self.max_bytes:
            return  # larger than the whole budget: keep it on disk only
        self._entries[key] = entry
        self._bytes += entry.nbytes
        content_key = entry.meta.get("content_key")
        if content_key:
            self._by_content[content_key] = key
        while self._bytes > self.max_bytes and self._entries:
            self._forget(next(iter(self._entries)))  # the least recently used

    def _forget(self, key: str) -> None:
        old = self._entries.pop(key)
        self._bytes -= old.nbytes
        old_content = old.meta.get("content_key")
        if old_content and self._by_content.get(old_content) == key:
            del self._by_content[old_content]

    def clear(self) -> None:
        """Forget everything in memory (files on disk stay) and reset the counters."""
        self._entries.clear()
        self._by_content.clear()
        self._bytes = 0
        self.hits = self.misses = self.disk_hits = self.moved_hits = 0

    @property
    def nbytes(self) -> int:
        """Bytes held in memory."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict:
        """Entries, bytes held, hits, misses, disk hits and re-positioned hits."""
        return {"entries": len(self._entries), "bytes": self._bytes, "hits": self.hits, "misses": self.misses,
                "disk_hits": self.disk_hits, "moved_hits": self.moved_hits}

    def __repr__(self) -> str:
        where = f", directory={str(self.directory)!r}" if self.directory else ""
        return (f"SegmentCache({len(self)} entries, {self._bytes / 2**20:.1f} of {self.max_bytes / 2**20:.0f} MiB, "
                f"hits={self.hits}, misses={self.misses}{where})")

    # ----------------------------------------------------------------------------------------- disk
    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def _save(self, key: str, entry: CacheEntry) -> None:
        from safetensors.torch import save_file

        tensors = {"positions": entry.positions.contiguous()}
        for i, (k, v) in enumerate(zip(entry.keys, entry.values)):
            tensors[f"k{i}"] = k.detach().cpu().contiguous()
            tensors[f"v{i}"] = v.detach().cpu().contiguous()
        if entry.hidden is not None:
            tensors["hidden"] = entry.hidden.detach().cpu().contiguous()
        metadata = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "fingerprint": self.fingerprint or "",
                    "key": key, "layers": str(len(entry.keys)),
                    "content_key": str(entry.meta.get("content_key", ""))}
        metadata["digest"] = entry_digest(tensors, metadata)
        path = self._path(key)
        if path.is_dir():
            raise CorruptCacheError(f"cannot write cache file {path}: a directory is in its place; remove it")
        handle, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.directory)
        os.close(handle)
        try:
            save_file(tensors, tmp, metadata=metadata)
            os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _load(self, key: str) -> CacheEntry | None:
        if self.directory is None:
            return None
        path = self._path(key)
        if not path.exists():
            return None
        if path.is_dir():
            raise CorruptCacheError(f"cache file {path} is a directory, not a file; remove it and the segment will "
                                    f"be encoded again")
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except FileNotFoundError:  # pruned by another process since exists(): a miss
            return None
        except Exception as error:  # safetensors raises several types for truncated or garbled files
            raise CorruptCacheError(
                f"cache file {path} is corrupt or not a safetensors file ({type(error).__name__}: {error}); "
                f"delete it and the segment will be encoded again"
            ) from error
        if metadata.get("format") != CACHE_FORMAT or metadata.get("version") != CACHE_VERSION:
            raise CorruptCacheError(
                f"cache file {path} is not a structlm segment cache of version {CACHE_VERSION} "
                f"(format={metadata.get('format')!r}, version={metadata.get('version')!r}); delete it"
            )
        # the digest covers the metadata too, so a flipped bit anywhere is named as corruption, not as a mismatch
        if entry_digest(tensors, metadata) != metadata.get("digest"):
            raise CorruptCacheError(
                f"cache file {path} fails its digest check: its contents changed after it was written (a flipped "
                f"bit, a partial copy); delete it and the segment will be encoded again"
            )
        if self.fingerprint is not None and metadata.get("fingerprint") != self.fingerprint:
            raise CacheMismatchError(
                f"cache file {path} was made by another model (fingerprint {metadata.get('fingerprint')!r}, "
                f"this model is {self.fingerprint!r}); point each model at its own cache directory"
            )
        if metadata.get("key") != key:
            raise CorruptCacheError(
                f"cache file {path} holds the entry {metadata.get('key')!r}, not {key!r} (a file renamed or copied "
                f"over another); delete it"
            )
        try:
            layers = int(metadata["layers"])
            keys = [tensors[f"k{i}"] for i in range(layers)]
            values = [tensors[f"v{i}"] for i in range(layers)]
            positions = tensors["positions"]
        except (KeyError, ValueError) as error:
            raise CorruptCacheError(f"cache file {path} misses tensors ({error}); delete it") from error
        meta = {"content_key": metadata["content_key"]} if metadata.get("content_key") else {}
        return CacheEntry(keys=keys, values=values, hidden=tensors.get("hidden"), positions=positions, meta=meta)
