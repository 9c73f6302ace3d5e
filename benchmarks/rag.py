"""RAG time-to-first-token: sequential prefill vs parallel (APE layout) cold vs parallel warm, in one run.

    python benchmarks/rag.py                         # 8, 32, 128 contexts x 512 tokens, tiny random Llama
    python benchmarks/rag.py --contexts 8 32 --repeat 5
    python benchmarks/rag.py --device cuda           # same on a GPU (peak memory from torch.cuda)

* sequential: the ordinary prefill of ``prefix + contexts + query`` — one causal forward of the model (sdpa,
  no mask), keeping the logits of the last token only.
* parallel cold: ``StructuredLM.generate(parallel_plan, max_new_tokens=1)`` on an empty SegmentCache — every
  context encoded on its own after the shared prefix (reuse backend), then the query over all of them.
* parallel warm: the same with a new query over contexts already in the cache (the second question to the
  same documents): only the query is encoded.
* parallel warm + APE: the warm path with ``attention=APE()``.

Time-to-first-token is the wall time until the first new token is chosen (median of ``--repeat`` runs; process CPU
time beside it). Peak memory is the growth of the RSS high-water mark during the call (reset through
/proc/self/clear_refs) on CPU, or ``torch.cuda.max_memory_allocated`` growth on CUDA. Ratios are against the
sequential prefill measured in this run.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402

import torch  # noqa: E402

from measure import timed  # noqa: E402
from structlm import rag  # noqa: E402


def tiny_llama(max_positions: int, device: str, seed: int = 0):
    """A tiny random Llama (2 layers, hidden 64, 4 heads / 2 KV heads, vocab 1024), fp32, sdpa."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions)
    torch.manual_seed(seed)
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa").eval().to(device)


class Meter:
    """Wall time, process CPU time and peak memory growth of one call (see benchmarks/measure.py)."""

    def __init__(self, device: str) -> None:
        self.device = device

    def __call__(self, fn):
        return timed(fn, self.device)


def measure(n_contexts: int, tokens: int, repeat: int, device: str, sequential_limit: int) -> dict:
    from structlm.hf import StructuredLM
    from structlm.hf.attention import APE

    gen = torch.Generator().manual_seed(n_contexts)
    prefix = torch.randint(4, 1024, (32,), generator=gen).tolist()
    contexts = [torch.randint(4, 1024, (tokens,), generator=gen).tolist() for _ in range(n_contexts)]
    queries = [torch.randint(4, 1024, (24,), generator=gen).tolist() for _ in range(2 * repeat + 2)]
    total = len(prefix) + n_contexts * tokens + len(queries[0])
    model = tiny_llama(max(total + 8, 4096), device)
    lm = StructuredLM(model)
    meter = Meter(device)
    rows: dict[str, list] = {}

    def record(name, fn):
        result, wall, cpu, peak = meter(fn)
        rows.setdefault(name, []).append((wall, cpu, peak))
        return result

    def sequential(query):
        ids = torch.tensor([prefix + sum(contexts, []) + query], device=device)
        with torch.no_grad():
            logits = model(input_ids=ids, use_cache=False, logits_to_keep=1).logits
        return int(logits[0, -1].argmax())

    run_sequential = total <= sequential_limit
    q = 0
    if run_sequential:
        sequential(queries[0])  # warm-up (allocator, kernels)
    lm.generate(rag.parallel(None, contexts[:1], queries[0], prefix=prefix), max_new_tokens=1)  # warm-up
    for _ in range(repeat):
        if run_sequential:
            record("sequential", lambda: sequential(queries[q]))
        lm.cache.clear()
        record("parallel cold", lambda: lm.generate(rag.parallel(None, contexts, queries[q], prefix=prefix),
                                                    max_new_tokens=1))
        q += 1
        record("parallel warm", lambda: lm.generate(rag.parallel(None, contexts, queries[q], prefix=prefix),
                                                    max_new_tokens=1))
        q += 1
        record("parallel warm + APE", lambda: lm.generate(rag.parallel(None, contexts, queries[q], prefix=prefix),
                                                          max_new_tokens=1, attention=APE()))
    # correctness guard: warm == cold first token for one query
    lm.cache.clear()
    plan = rag.parallel(None, contexts, queries[-1], prefix=prefix)
    cold = lm.generate(plan, max_new_tokens=1)
    warm = lm.generate(plan, max_new_tokens=1)
    assert torch.equal(cold, warm), "warm and cold parallel prefill disagree"
    summary = {name: tuple(statistics.median(v[i] for v in values) for i in range(3)) for name, values in rows.items()}
    summary["_tokens"] = total
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--tokens", type=int, default=512, help="tokens per context")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sequential-limit", type=int, default=70_000,
                        help="skip the sequential baseline above this many tokens (it is O(N^2))")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    print(f"{'contexts':>8} {'tokens':>7}  {'method':<22} {'TTFT ms':>9} {'CPU ms':>9} {'peak MiB':>9} "
          f"{'speed-up':>9} {'CPU speed-up':>12}")
    for n in args.contexts:
        result = measure(n, args.tokens, args.repeat, args.device, args.sequential_limit)
        total = result.pop("_tokens")
        base = result.get("sequential")
        for name, (wall, cpu, peak) in result.items():
            ratio = f"{base[0] / wall:8.1f}x" if base else "      n/a"
            cpu_ratio = f"{base[1] / cpu:11.1f}x" if base else "         n/a"
            print(f"{n:>8} {total:>7}  {name:<22} {wall * 1e3:9.1f} {cpu * 1e3:9.1f} {peak / 2**20:9.1f} {ratio} "
                  f"{cpu_ratio}")


if __name__ == "__main__":
    main()
