"""Runtime backends against a sequential prefill, measured in the same run.

    python benchmarks/runtime.py                 # 32 contexts x 512 tokens behind a 32-token prefix, 64-token query

A tiny random Llama (4 layers, hidden 256, fp32, CPU). Prints time-to-first-token and peak extra memory of:
the sequential prefill (HF, the same tokens one after another), ``reuse`` cold (empty cache), ``reuse`` warm
(contexts cached, only the query is new), ``dense`` and ``flex``, with ratios to the sequential prefill.
Memory is the RSS high-water mark above the start of each measurement (Linux clear_refs).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402

warnings.filterwarnings("ignore")

from structlm import Plan, Segment  # noqa: E402
from structlm.hf import StructuredLM  # noqa: E402


def tiny_llama(layers: int = 4, hidden: int = 256):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1024, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=65536)
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa", dtype=torch.float32).eval()


def parallel_plan(contexts: int, context_len: int, prefix_len: int = 32, query_len: int = 64, seed: int = 0,
                  query_seed: int = 1) -> Plan:
    g = torch.Generator().manual_seed(seed)
    plan = Plan()
    plan.add(Segment("prefix", input_ids=torch.randint(3, 1024, (prefix_len,), generator=g), role="prefix"))
    for i in range(contexts):
        ids = torch.randint(3, 1024, (context_len,), generator=g)
        plan.add(Segment(f"context{i}", input_ids=ids, start=prefix_len, role="context"), sees=["prefix"])
    q = torch.randint(3, 1024, (query_len,), generator=torch.Generator().manual_seed(query_seed))
    plan.add(Segment("query", input_ids=q, start=prefix_len + context_len, role="query"), sees=plan.names)
    return plan


def _kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(fn, repeat: int = 1) -> tuple[float, float, float]:
    """Best wall time, its process CPU time, and peak extra RSS in MiB."""
    best, cpu_best, peak = float("inf"), 0.0, 0.0
    for _ in range(repeat):
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        before = _kib("VmRSS")
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = max(peak, (_kib("VmHWM") - before) / 1024)
        if elapsed < best:
            best, cpu_best = elapsed, cpu
    return best, cpu_best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", type=int, default=32)
    parser.add_argument("--context-len", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-flex", action="store_true", help="skip the flex backend (compiles for seconds)")
    args = parser.parse_args()
    model = tiny_llama()
    plan = parallel_plan(args.contexts, args.context_len)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; {plan!r}")
    ids = plan.input_ids
    sequential_positions = torch.arange(ids.shape[1])[None]

    def sequential():
        with torch.no_grad():
            model(ids, position_ids=sequential_positions, use_cache=True)

    rows = []
    base, cpu, mem = measure(sequential, args.repeat)
    rows.append(("sequential prefill (HF)", base, cpu, mem))

    def reuse_cold():
        StructuredLM(model).prefill(plan)

    t, c, mm = measure(reuse_cold, args.repeat)
    rows.append(("reuse cold", t, c, mm))

    lm = StructuredLM(model)
    lm.prefill(plan)  # contexts cached
    queries = iter(range(2, 10_000))

    def reuse_warm():
        warm = parallel_plan(args.contexts, args.context_len, query_seed=next(queries))
        lm.prefill(warm)

    t, c, mm = measure(reuse_warm, args.repeat)
    rows.append(("reuse warm (new query, cached contexts)", t, c, mm))

    def dense():
        lm.forward(plan, backend="dense")

    t, c, mm = measure(dense, 1)
    rows.append(("dense (sdpa, bool 4D mask)", t, c, mm))
    if not args.no_flex:
        lm.forward(plan, backend="flex")  # compile once
        t, c, mm = measure(lambda: lm.forward(plan, backend="flex"), args.repeat)
        rows.append(("flex (BlockMask, compiled)", t, c, mm))
    print(f"{'what':42s} {'wall ms':>10s} {'cpu s':>8s} {'peak MiB':>9s} {'vs sequential':>14s}")
    for name, t, c, mm in rows:
        print(f"{name:42s} {t * 1e3:10.1f} {c:8.2f} {mm:9.1f} {base / t:13.1f}x")
    times = {name: t for name, t, _, _ in rows}
    if not args.no_flex:
        print(f"flex vs dense: {times['dense (sdpa, bool 4D mask)'] / times['flex (BlockMask, compiled)']:.1f}x")
    print(f"goals: warm >= 50x, cold >= 2x, flex >= 3x dense; cache {lm.cache!r}")


if __name__ == "__main__":
    main()
