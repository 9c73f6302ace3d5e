"""Mask targets against the brute-force rule on seeded random plans: 1,200 plans in the default run, 20,000 under
``-m fuzz`` (a new base seed per run). A failure prints the seed, the case as JSON and ``python -m tests.fuzz
masks SEED``, which replays it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import FuzzFailure, chunk_seeds, fuzz_base, fuzz_count, replay_command, run_seeds
from tests.fuzz_masks import check_mask_case, mask_case

ROOT = Path(__file__).resolve().parent.parent
CHUNKS = 20
FUZZ_BASE = fuzz_base(marked=True)


def test_mask_targets_default_share():
    count = fuzz_count("masks", marked=False)
    assert count >= 1000 or "STRUCTLM_FUZZ_SCALE" in os.environ
    seconds = run_seeds("masks", range(count), check_mask_case)
    print(f"mask fuzz (default share): {count} plans in {seconds:.1f} s")


@pytest.mark.fuzz
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_mask_targets_fuzz(chunk):
    seeds = chunk_seeds("masks", chunk, CHUNKS, FUZZ_BASE)
    seconds = run_seeds("masks", seeds, check_mask_case)
    print(f"mask fuzz chunk {chunk}: {len(seeds)} plans from seed {seeds.start} (base {FUZZ_BASE}) in "
          f"{seconds:.1f} s")


def test_the_sizes_of_the_issue_are_reached():
    cases = [mask_case(seed).plan for seed in range(fuzz_count("masks", marked=False))]
    counts = [p.num_segments for p in cases]
    lengths = [len(s) for p in cases for s in p]
    assert min(counts) == 1 and max(counts) == 64 and min(lengths) == 1 and max(lengths) >= 290
    assert sum(len(p) <= 300 for p in cases) >= 0.8 * len(cases)  # most plans are small
    floats = sum(p.position_ids.is_floating_point() for p in cases)
    assert 0.05 * len(cases) < floats < 0.5 * len(cases)


def test_a_failure_names_the_seed_the_case_and_a_replay_that_regenerates_it():
    def broken(seed):
        if seed == 5:
            raise AssertionError("dense bool")

    with pytest.raises(FuzzFailure) as caught:
        run_seeds("masks", range(3, 8), broken)
    message = str(caught.value)
    assert "masks fuzz failed on seed 5: AssertionError: dense bool" in message
    assert "replay: python -m tests.fuzz masks 5\n" in message
    case = json.loads(message.split("case (JSON): ", 1)[1])
    assert case == json.loads(mask_case(5).describe())
    # the printed command runs from the repository root and rebuilds the same case
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tests.fuzz", "masks", "5"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed, verdict = done.stdout.strip().splitlines()
    assert json.loads(printed) == case and verdict == "ok: masks seed 5"
    assert replay_command("runtime", 9, first=4) == "python -m tests.fuzz runtime 9 --from 4"
