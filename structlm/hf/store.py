"""The segment store on disk, shared by processes and machines: whose store it is, how big, how to bound it.

Why a manifest: entry keys already hash the model fingerprint, so another model's entries are never *found*;
without a claim on the folder, two models would silently fill one store and neither would get hits. The first
writer claims the folder (``structlm-store.json``, created with an atomic link, so two racing processes agree);
a model with another fingerprint is refused. Entries are written to a temporary file and renamed, so readers on
any machine (NFS, a mounted bucket with atomic rename) see a whole file or none; ``prune_store`` bounds the size.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from structlm.errors import CacheMismatchError, CorruptCacheError

__all__ = ["MANIFEST", "claim_store", "store_stats", "prune_store", "stray_temporaries"]

MANIFEST = "structlm-store.json"


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CorruptCacheError(f"store manifest {path} is unreadable ({error}); delete it") from error


def claim_store(directory: str | os.PathLike, fingerprint: str, fmt: str, version: str) -> None:
    """Claim ``directory`` for the model ``fingerprint``, or check that it is already this model's."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        text = json.dumps({"format": fmt, "version": version, "fingerprint": fingerprint}) + "\n"
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{MANIFEST}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            try:
                os.link(temporary, path)  # create-if-absent, atomically: of two racing claims one wins
            except FileExistsError:
                pass
        finally:
            os.unlink(temporary)
    manifest = _read_manifest(path)
    if manifest.get("fingerprint") != fingerprint:
        raise CacheMismatchError(
            f"the segment store {directory} belongs to another model (fingerprint {manifest.get('fingerprint')!r}, "
            f"this model is {fingerprint!r}); point each model at its own cache directory"
        )


def _entries(directory: Path) -> list[Path]:
    return [p for p in directory.glob("*.safetensors") if not p.name.startswith(".")]


def stray_temporaries(directory: str | os.PathLike, older_than: float = 3600.0) -> list[Path]:
    """Temporary files of writers that died mid-write (never loaded: entries are only ever whole renames)."""
    cutoff = time.time() - older_than
    out = []
    for path in Path(directory).glob(".*.tmp"):
        try:
            if path.stat().st_mtime < cutoff:
                out.append(path)
        except FileNotFoundError:
            continue
    return out


def store_stats(directory: str | os.PathLike) -> dict:
    """Entries and bytes on disk, and the owning fingerprint (None before the first write)."""
    directory = Path(directory)
    sizes = []
    for path in _entries(directory):
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:  # pruned by another process meanwhile
            continue
    manifest = directory / MANIFEST
    owner = _read_manifest(manifest).get("fingerprint") if manifest.exists() else None
    return {"entries": len(sizes), "bytes": sum(sizes), "fingerprint": owner}


def prune_store(directory: str | os.PathLike, max_bytes: int, stray_after: float = 3600.0) -> dict:
    """Delete the least recently written entries until the store holds at most ``max_bytes``.

    Safe while others read and write: a pruned entry is a future miss (it is encoded again), never a half file.
    Temporary files older than ``stray_after`` seconds (writers killed mid-write) go too. Returns what was removed.
    """
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    directory = Path(directory)
    listed = []
    for path in _entries(directory):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        listed.append((stat.st_mtime, stat.st_size, path))
    listed.sort()
    total = sum(size for _, size, _ in listed)
    removed = freed = 0
    for _, size, path in listed:
        if total <= max_bytes:
            break
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        total -= size
        freed += size
        removed += 1
    strays = stray_temporaries(directory, stray_after)
    for path in strays:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    return {"removed": removed, "freed_bytes": freed, "bytes": total, "temporaries": len(strays)}
