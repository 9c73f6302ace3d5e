"""What the cache files' digest costs: verifying a load against the plain safetensors load, in the same run.

    python benchmarks/cache_digest.py                 # 256 MiB of entries, 16 MiB each
    python benchmarks/cache_digest.py --mib 1024 --entry-mib 64

Writes entries through ``SegmentCache`` (each file carries a SHA-256 digest of its contents), then reads them
back, best of ``--repeat``, files warm in the page cache: the plain load (``safe_open`` + ``get_tensor``, what
a load did before digests; it maps the file and reads no byte yet), the plain load with one copy of every tensor
(the bytes read once), the digest alone over the loaded tensors, and ``SegmentCache.get`` on an empty memory cache
(load + check). Prints seconds per GB and the ratios of the checked load to the plain ones; wall and process CPU
time, one thread.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

from measure import timed  # noqa: E402
from structlm.hf.cache import CacheEntry, SegmentCache, entry_digest  # noqa: E402


def write_entries(directory: Path, total_mib: int, entry_mib: int, layers: int = 4) -> list[str]:
    """Entries of ``layers`` key/value pairs ``[1, 4, L, 64]`` fp32 of about ``entry_mib`` MiB each."""
    cache = SegmentCache(max_bytes=0, directory=directory)  # disk only
    length = entry_mib * 2**20 // (2 * layers * 4 * 64 * 4)
    keys = []
    generator = torch.Generator().manual_seed(0)
    for i in range(max(1, total_mib // entry_mib)):
        kv = [torch.randn(1, 4, length, 64, generator=generator) for _ in range(2 * layers)]
        entry = CacheEntry(keys=kv[:layers], values=kv[layers:], hidden=None, positions=torch.arange(length))
        key = f"{i:040x}"
        cache.put(key, entry)
        keys.append(key)
    return keys


def plain_load(directory: Path, keys: list[str]) -> list[dict]:
    out = []
    for key in keys:
        with safe_open(str(directory / f"{key}.safetensors"), framework="pt") as handle:
            out.append({"metadata": handle.metadata(), "tensors": {n: handle.get_tensor(n) for n in handle.keys()}})
    return out


def plain_load_copied(directory: Path, keys: list[str]) -> int:
    """The plain load, then every tensor copied once: safetensors maps the file lazily, so this is the first
    time the bytes are read (what joining the entry into a cache does anyway)."""
    return sum(t.clone().numel() for e in plain_load(directory, keys) for t in e["tensors"].values())


def checked_load(directory: Path, keys: list[str]) -> int:
    cache = SegmentCache(max_bytes=0, directory=directory)  # nothing kept in memory: every get reads the file
    return sum(cache.get(key) is not None for key in keys)


def best(fn, repeat: int) -> tuple[float, float]:
    runs = [timed(fn)[1:3] for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB of entries written and read")
    parser.add_argument("--entry-mib", type=int, default=16, help="MiB per entry")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        keys = write_entries(directory, args.mib, args.entry_mib)
        gb = sum((directory / f"{k}.safetensors").stat().st_size for k in keys) / 1e9
        loaded = plain_load(directory, keys)
        assert checked_load(directory, keys) == len(keys)
        plain_wall, plain_cpu = best(lambda: plain_load(directory, keys), args.repeat)
        copied_wall, copied_cpu = best(lambda: plain_load_copied(directory, keys), args.repeat)
        digest_wall, digest_cpu = best(lambda: [entry_digest(e["tensors"], e["metadata"]) for e in loaded],
                                       args.repeat)
        checked_wall, checked_cpu = best(lambda: checked_load(directory, keys), args.repeat)
    print(f"{len(keys)} entries, {gb:.3f} GB on disk (warm page cache), best of {args.repeat}")
    print(f"plain load (safe_open + get_tensor): {plain_wall / gb:.3f} s/GB wall, {plain_cpu / gb:.3f} s/GB CPU")
    print(f"plain load + one copy of each      : {copied_wall / gb:.3f} s/GB wall, {copied_cpu / gb:.3f} s/GB CPU")
    print(f"digest alone (SHA-256)             : {digest_wall / gb:.3f} s/GB wall, {digest_cpu / gb:.3f} s/GB CPU")
    print(f"SegmentCache.get (load + check)    : {checked_wall / gb:.3f} s/GB wall, {checked_cpu / gb:.3f} s/GB CPU")
    print(f"checked / plain load: {checked_wall / plain_wall:.1f}x wall, {checked_cpu / plain_cpu:.1f}x CPU "
          f"(the plain load maps the file and reads nothing yet)")
    print(f"checked / plain load + copy: {checked_wall / copied_wall:.2f}x wall, {checked_cpu / copied_cpu:.2f}x CPU")


if __name__ == "__main__":
    main()
