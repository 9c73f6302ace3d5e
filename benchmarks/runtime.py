"""Runtime backends against a sequential prefill, measured in the same run.

    python benchmarks/runtime.py                 # 32 contexts x 512 tokens behind a 32-token prefix, 64-token query

A tiny random Llama (4 layers, hidden 256, fp32, CPU). Prints time-to-first-token and peak extra memory of:
the sequential prefill (HF, the same tokens one after another), ``reuse`` cold (empty cache), ``reuse`` warm
(contexts cached, only the query is new), ``dense`` and ``flex``, with ratios to the sequential prefill.
Each variant runs in its own process; memory is the RSS high-water mark above the start of its timed part
(Linux clear_refs), so it is that variant's own.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402

warnings.filterwarnings("ignore")

from measure import timed  # noqa: E402
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


def measure(fn, repeat: int = 1) -> tuple[float, float, float]:
    """Best wall time, its process CPU time, and the largest peak extra memory in MiB."""
    runs = [timed(fn)[1:] for _ in range(repeat)]
    wall, cpu, _ = min(runs)
    return wall, cpu, max(peak for _, _, peak in runs) / 2**20


VARIANTS = ("sequential", "reuse_cold", "reuse_warm", "dense", "flex")
LABELS = {
    "sequential": "sequential prefill (HF)",
    "reuse_cold": "reuse cold",
    "reuse_warm": "reuse warm (new query, cached contexts)",
    "dense": "dense (sdpa, bool 4D mask)",
    "flex": "flex (BlockMask, compiled)",
}


def run_variant(variant: str, contexts: int, context_len: int, repeat: int) -> tuple[float, float, float]:
    """One measurement in this process: set-up (model, plan, warm-up) first, then the timed part."""
    model = tiny_llama()
    plan = parallel_plan(contexts, context_len)
    lm = StructuredLM(model)
    if variant == "sequential":
        ids, positions = plan.input_ids, torch.arange(len(plan))[None]

        def fn():
            with torch.no_grad():
                model(ids, position_ids=positions, use_cache=True)
    elif variant == "reuse_cold":
        def fn():
            StructuredLM(model).prefill(plan)
    elif variant == "reuse_warm":
        lm.prefill(plan)  # contexts cached; the first new query joins them once
        lm.prefill(parallel_plan(contexts, context_len, query_seed=2))
        queries = iter(range(3, 10_000))

        def fn():
            lm.prefill(parallel_plan(contexts, context_len, query_seed=next(queries)))
    elif variant == "dense":
        repeat = 1

        def fn():
            lm.forward(plan, backend="dense")
    elif variant == "flex":
        lm.forward(plan, backend="flex")  # compile once

        def fn():
            lm.forward(plan, backend="flex")
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return measure(fn, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", type=int, default=32)
    parser.add_argument("--context-len", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-flex", action="store_true", help="skip the flex backend (compiles for seconds)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one measurement, in a child
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.contexts, args.context_len, args.repeat)))
        return
    plan = parallel_plan(args.contexts, args.context_len)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; {plan!r}")
    print("each variant runs in its own process (so peak memory is its own); times are best of --repeat")
    rows = {}
    for variant in VARIANTS:
        if variant == "flex" and args.no_flex:
            continue
        command = [sys.executable, __file__, "--variant", variant, "--contexts", str(args.contexts),
                   "--context-len", str(args.context_len), "--repeat", str(args.repeat)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        rows[variant] = json.loads(result.stdout.strip().splitlines()[-1])
    base = rows["sequential"][0]
    print(f"{'what':42s} {'wall ms':>10s} {'cpu s':>8s} {'peak MiB':>9s} {'vs sequential':>14s}")
    for variant, (t, c, mm) in rows.items():
        print(f"{LABELS[variant]:42s} {t * 1e3:10.1f} {c:8.2f} {mm:9.1f} {base / t:13.1f}x")
    if "flex" in rows:
        print(f"flex vs dense: {rows['dense'][0] / rows['flex'][0]:.1f}x")
    print("goals: warm >= 50x, cold >= 2x, flex >= 3x dense")


if __name__ == "__main__":
    main()
