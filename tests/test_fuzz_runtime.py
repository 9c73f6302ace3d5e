"""Runtime backends against the explicit-mask reference on seeded random acyclic plans (tiny Llama, Qwen2, Gemma 2,
BERT): 100 plans in the default run (flex on Llama, Qwen2 and BERT, in the ladder plan's bucket), 2,000 under ``-m fuzz``
(both flex buckets). A failure prints the seed, the case as JSON and ``python -m tests.fuzz runtime SEED --from
FIRST`` (the seeds of its chunk, in order, on one cache)."""
from __future__ import annotations

import json
import os

import pytest
import torch

from tests.fuzz import chunk_seeds, fuzz_base, fuzz_count, main, run_seeds
from tests.fuzz_runtime import BUCKETS, RuntimeChecker, padded, runtime_case

CHUNKS = 20
FUZZ_BASE = fuzz_base(marked=True)


def test_runtime_backends_default_share():
    count = fuzz_count("runtime", marked=False)
    assert count >= 50 or "STRUCTLM_FUZZ_SCALE" in os.environ
    # flex compiles per architecture variant (Gemma 2 alone needs three): the default share runs flex on the
    # Llama / Qwen2 (one shared compile) and BERT plans; -m fuzz on all
    checker = RuntimeChecker(buckets=BUCKETS[:1], flex_archs=("llama", "qwen2", "bert"))
    try:
        seconds = run_seeds("runtime", range(count), checker.check, first=0)
    finally:
        checker.close()
        torch._dynamo.reset()  # later tests get torch's whole recompile budget for their own flex variants
    counts = checker.counts
    assert counts["plans"] == count and counts["flex"] >= count // 3
    assert counts["cache_hits"] > 0 and counts["disk_hits"] > 0  # the shared cache served, also from disk
    print(f"runtime fuzz (default share): {counts} in {seconds:.1f} s")


@pytest.mark.fuzz
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_runtime_backends_fuzz(chunk):
    seeds = chunk_seeds("runtime", chunk, CHUNKS, FUZZ_BASE)
    checker = RuntimeChecker()
    try:
        seconds = run_seeds("runtime", seeds, checker.check, first=seeds.start)
    finally:
        checker.close()
    print(f"runtime fuzz chunk {chunk}: {checker.counts} from seed {seeds.start} (base {FUZZ_BASE}) in "
          f"{seconds:.1f} s")


def test_runtime_cases_cover_every_architecture_and_both_buckets():
    cases = [runtime_case(seed) for seed in range(200)]
    assert {c.arch for c in cases} == {"llama", "qwen2", "gemma2", "bert"}
    assert all(padded(c.plan, BUCKETS[1]) is not None for c in cases)
    assert 0.5 * len(cases) < sum(padded(c.plan, BUCKETS[0]) is not None for c in cases) < len(cases)
    assert all(not c.plan.position_ids.is_floating_point() for c in cases if c.arch == "bert")
    assert any(c.plan.position_ids.is_floating_point() for c in cases)
    for c in cases:
        c.plan.schedule()  # acyclic
        fitted = padded(c.plan, BUCKETS[0])
        if fitted is not None:
            assert (fitted.num_segments, len(fitted)) == BUCKETS[0] and fitted.subplan(c.plan.names) == c.plan


def test_replay_runs_one_runtime_case(capsys):
    seed = next(s for s in range(100) if padded(runtime_case(s).plan, BUCKETS[0]) is not None)
    assert main(["runtime", str(seed)]) == 0
    printed, verdict = capsys.readouterr().out.strip().splitlines()
    assert json.loads(printed) == json.loads(runtime_case(seed).describe())
    assert verdict == f"ok: runtime seed {seed}"
