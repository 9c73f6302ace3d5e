"""Plan -> BlockMask compile time against torch's create_block_mask, measured in the same run.

    python benchmarks/plan_compile.py            # 16,384 and 131,072 tokens, 1,024 segments

Prints the time of ``plan.block_mask()``, of ``create_block_mask(plan.mask_function(), ...)`` at 16k (the ratio
is the figure to read), the time at 131k, and the peak extra memory of ``block_mask()`` (the RSS high-water
mark, reset through /proc/self/clear_refs), next to N^2 bytes — what a dense bool mask would cost.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn.attention.flex_attention import create_block_mask  # noqa: E402

from measure import timed  # noqa: E402
from structlm import Plan, Segment  # noqa: E402


def mixed_plan(total_tokens: int, num_segments: int = 1024, seed: int = 0) -> Plan:
    """A shared prefix, parallel contexts, targets that see random sources, and a query that sees all."""
    rng = np.random.default_rng(seed)
    prefix_len, query_len = 128, 64
    body = num_segments - 2
    each = (total_tokens - prefix_len - query_len) // body
    extra = total_tokens - prefix_len - query_len - each * body
    plan = Plan()
    plan.add(Segment("prefix", input_ids=torch.ones(prefix_len, dtype=torch.long), role="prefix"))
    sources = []
    for i in range(body):
        length = each + (1 if i < extra else 0)
        ids = torch.ones(length, dtype=torch.long)
        if i < body // 2:
            name = f"context{i}"
            plan.add(Segment(name, input_ids=ids, start=prefix_len, role="context"), sees=["prefix"])
            sources.append(name)
        else:
            picks = rng.choice(len(sources), size=4, replace=False)
            seen = ["prefix"] + [sources[j] for j in picks]
            plan.add(Segment(f"target{i}", input_ids=ids, start=prefix_len + each, role="target"), sees=seen)
    plan.add(Segment("query", input_ids=torch.ones(query_len, dtype=torch.long), start=prefix_len + 2 * each + 1,
                     role="query"), sees=plan.names)
    return plan


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_extra_bytes(plan: Plan) -> int:
    """Peak RSS growth while ``block_mask()`` runs (derived plan tensors computed first, as in normal use)."""
    _ = plan.offsets, plan.adjacency, plan.segment_ids, plan.causal_flags
    return timed(plan.block_mask)[3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    plan16 = mixed_plan(16_384)
    print(f"plan: {plan16!r}")
    cpu0 = time.process_time()
    ours16 = best_of(plan16.block_mask, args.repeat)
    fn = plan16.mask_function()
    theirs16 = best_of(lambda: create_block_mask(fn, None, None, len(plan16), len(plan16), device="cpu"), 1)
    check = plan16.block_mask()
    reference = create_block_mask(fn, None, None, len(plan16), len(plan16), device="cpu")
    same = torch.equal(check.to_dense(), reference.to_dense())
    print(f"16,384 tokens: block_mask() {ours16 * 1e3:8.1f} ms | create_block_mask {theirs16 * 1e3:8.1f} ms "
          f"| ratio {theirs16 / ours16:6.1f}x | same tiles: {same}")
    plan131 = mixed_plan(131_072)
    ours131 = best_of(plan131.block_mask, args.repeat)
    print(f"131,072 tokens: block_mask() {ours131 * 1e3:8.1f} ms (goal < 1000 ms)")
    cpu = time.process_time() - cpu0
    for plan in (plan16, plan131):
        n = len(plan)
        extra = peak_extra_bytes(plan)
        print(f"peak extra memory of block_mask() at {n:,} tokens: {extra / 2**20:8.1f} MiB "
              f"(N^2 bytes = {n * n / 2**20:,.0f} MiB, ratio {extra / (n * n):.4f})")
    print(f"process CPU time for the timed part: {cpu:.1f} s")


if __name__ == "__main__":
    main()
