"""The runtime backends against the explicit-mask reference on one seeded acyclic plan: dense, reuse (without a
cache, and on a cache shared by the plans of a run whose memory budget is small, so entries come back from disk
through their digest), APE(1, 1) on dense and reuse, and flex — on tiny Llama, Qwen2, Gemma 2 and BERT.

Flex compiles per shape on CPU (seconds each), so a plan runs flex padded into a bucket of (segments, tokens) with
isolated filler segments: one compile per architecture variant and bucket, under a raised recompile limit (torch's
8 per function would make later variants fall back to uncompiled flex). The first bucket has the shape of the
runtime tests' ladder plan.
"""
from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import dataclass

import torch

from structlm import Plan, Segment
from structlm.hf import APE, SegmentCache, StructuredLM
from structlm.testing import reference_forward, tiny_model

ARCHS = ("llama", "qwen2", "gemma2", "bert")
ROTARY = ("llama", "qwen2", "gemma2")
#: flex buckets (segments, tokens); the first is the ladder plan's shape (tests/test_runtime.py)
BUCKETS = ((5, 22), (10, 64))
FLEX_BLOCK = 16
RECOMPILE_LIMIT = 32  # torch's default of 8 per function is shared with every other flex call of the process
TOL = 1e-4
VOCAB = 64


@dataclass
class RuntimeCase:
    seed: int
    arch: str
    plan: Plan

    def describe(self) -> str:
        return json.dumps({"arch": self.arch, "plan": json.loads(self.plan.to_json())})


def _pool(arch: str) -> list[tuple[list[int], int]]:
    """Token runs and starts shared by the plans of one architecture, so later plans meet cached segments."""
    rng = random.Random(arch)
    return [([rng.randint(3, VOCAB - 1) for _ in range(rng.randint(1, 6))], rng.choice([0, 8, 20])) for _ in range(6)]


def runtime_case(seed: int) -> RuntimeCase:
    """An acyclic plan: 1–4 segments of ≤ 17 tokens (fits the first flex bucket) or 5–9 of ≤ 63 tokens; ids and
    starts from a shared pool half the time, float positions on rotary models now and then."""
    rng = random.Random(seed)
    arch = ARCHS[seed % len(ARCHS)]
    small = rng.random() < 0.7
    count = rng.randint(1, 4) if small else rng.randint(5, 9)
    budget = (BUCKETS[0][1] - (BUCKETS[0][0] - count)) if small else (BUCKETS[1][1] - (BUCKETS[1][0] - count))
    floats = arch in ROTARY and rng.random() < 0.2
    pool = _pool(arch)
    plan = Plan()
    for i in range(count):
        room = budget - len(plan) - (count - i - 1)  # leave a token for every segment still to come
        if rng.random() < 0.5 and len(pool[i % 6][0]) <= room:
            ids, start = pool[rng.randrange(6)] if rng.random() < 0.5 else pool[i % 6]
            if len(ids) > room:
                ids, start = pool[i % 6]
        else:
            ids = [rng.randint(3, VOCAB - 1) for _ in range(rng.randint(1, min(7, room)))]
            start = rng.randint(0, 150)
        positions = None
        if floats and rng.random() < 0.5:
            positions = [start + 0.5 * j for j in range(len(ids))]
        elif rng.random() < 0.15:
            positions = [rng.randint(0, 200) for _ in ids]
        role = rng.choice(["prefix", "context", "context", "query", "text"])
        segment = Segment(f"s{i}", input_ids=ids, start=start, positions=positions, role=role,
                          causal=arch != "bert" and rng.random() < 0.7 or rng.random() < 0.2)
        earlier = plan.names
        plan.add(segment, sees=[n for n in earlier if rng.random() < rng.choice([0.2, 0.5, 1.0])])
    return RuntimeCase(seed, arch, plan)


def padded(plan: Plan, bucket: tuple[int, int]) -> Plan | None:
    """``plan`` plus isolated filler segments, exactly ``bucket`` = (segments, tokens); None if it does not fit."""
    segments, tokens = bucket
    fillers = segments - plan.num_segments
    spare = tokens - len(plan)
    if fillers < 0 or spare < fillers or (fillers == 0 and spare):
        return None
    out = plan.copy()
    for j in range(fillers):
        length = spare - (fillers - 1) if j == 0 else 1
        out.add(Segment(f"filler{j}", input_ids=[3] * length, role="filler"))
    return out


class RuntimeChecker:
    """Models, and the cached StructuredLM per architecture, shared by the plans of one run."""

    def __init__(self, buckets: tuple[tuple[int, int], ...] = BUCKETS, flex_archs: tuple[str, ...] = ARCHS) -> None:
        self.buckets = buckets
        self.flex_archs = flex_archs
        self.models: dict[str, torch.nn.Module] = {}
        self.cached: dict[str, StructuredLM] = {}
        self.folder = tempfile.mkdtemp(prefix="structlm-fuzz-")
        self.counts = {"plans": 0, "flex": 0, "cache_hits": 0, "disk_hits": 0}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def model(self, arch: str) -> torch.nn.Module:
        if arch not in self.models:
            self.models[arch] = tiny_model(arch)  # the runtime tests' configs: hidden 32, 2 layers
        return self.models[arch]

    def check(self, seed: int) -> None:
        case = runtime_case(seed)
        arch, plan = case.arch, case.plan
        m = self.model(arch)
        plain = StructuredLM(m, cache=SegmentCache(max_bytes=0), flex_block_size=FLEX_BLOCK)  # keeps nothing
        decoder = arch != "bert"
        field = "logits" if decoder else "last_hidden_state"
        ref = getattr(reference_forward(m, plan, position_offset=plain.position_offset), field)

        def close(out, what: str, rows: int | None = None) -> None:
            got = getattr(out, field)
            got = got if rows is None else got[:, :rows]
            error = (got - ref).abs().max().item()
            assert got.shape == ref.shape and error <= TOL, f"{arch} {what}: max error {error:.3g} > {TOL}"

        close(plain.forward(plan, backend="dense"), "dense")
        if decoder:
            close(plain.forward(plan, backend="reuse"), "reuse without a cache")
            assert plain.cache.hits == 0 and len(plain.cache) == 0
            cached = self._cached(arch, m)
            before = cached.cache.hits
            close(cached.forward(plan, backend="reuse"), "reuse on the shared cache")
            close(cached.forward(plan, backend="reuse"), "reuse on the shared cache, again")
            assert cached.cache.hits - before >= plan.num_segments  # the second call found every segment
            ape = APE(1.0, 1.0)
            close(plain.forward(plan, backend="dense", attention=ape), "APE(1, 1) dense")
            close(cached.forward(plan, backend="reuse", attention=ape), "APE(1, 1) reuse on the shared cache")
            self.counts["cache_hits"] = sum(lm.cache.hits for lm in self.cached.values())
            self.counts["disk_hits"] = sum(lm.cache.disk_hits for lm in self.cached.values())
        for bucket in self.buckets if arch in self.flex_archs else ():
            fitted = padded(plan, bucket)
            if fitted is not None:
                # one compile per (architecture variant, bucket): room for all of them, so flex stays compiled
                with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
                    out = plain.forward(fitted, backend="flex")
                close(out, f"flex in bucket {bucket}", rows=len(plan))
                self.counts["flex"] += 1
                break
        self.counts["plans"] += 1

    def _cached(self, arch: str, m: torch.nn.Module) -> StructuredLM:
        """A small memory budget (a few entries) over a disk store: evicted entries are read back and checked."""
        if arch not in self.cached:
            cache = SegmentCache(max_bytes=16_384, directory=f"{self.folder}/{arch}")
            self.cached[arch] = StructuredLM(m, cache=cache, flex_block_size=FLEX_BLOCK)
        return self.cached[arch]
