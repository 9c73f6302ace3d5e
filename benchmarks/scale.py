"""Scale-out: encode_corpus throughput with 1 vs 2 Ray workers on the local cluster, and what a query over an
N-context store costs warm from disk vs from memory vs from scratch, in one run.

    python benchmarks/scale.py                   # SmolLM2-135M-Instruct (embedded), 48 contexts of ~128 tokens
    python benchmarks/scale.py --quick           # a tiny random Llama, 32 contexts (seconds; the numbers mean little)
    python benchmarks/scale.py --contexts 96 --query-contexts 8

* encode: ``encode_corpus(contexts, model, fresh_store, num_workers=W)``, wall time of the whole call (Ray
  Data plan, actors started, model loaded in each actor, contexts encoded and written); ``steady`` is
  contexts / the encode span (the first batch started to the last one finished, in the workers: actors up).
* query: ``rag.parallel`` over ``--query-contexts`` of the stored contexts + a question, ``logits_for="last"``,
  reuse backend. ``disk``: a fresh ``SegmentCache(directory=store)`` each time (entries read from safetensors;
  the OS page cache is warm after the first); ``memory``: the same cache again (every context an LRU hit);
  ``scratch``: an empty cache (every segment encoded).

The machine is shared (2 cores, several engineers): wall and process CPU time are printed; Ray workers' CPU
time is not in the driver's, so the encode figures are wall only.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from measure import timed  # noqa: E402
from structlm.hf import SegmentCache, StructuredLM  # noqa: E402
from structlm.rag import parallel  # noqa: E402
from structlm.scale import encode_corpus, ensure_ray  # noqa: E402

PREFIX = "Answer the question from the documents."
QUESTION = "Which statement explains how the interpreter evaluates this?"


def documents(count: int, words: int) -> list[str]:
    """``count`` distinct passages of ``words`` words from the stdlib's pydoc topics."""
    from pydoc_data.topics import topics

    pool = " ".join(topics[name] for name in sorted(topics)).split()
    return [" ".join(pool[i * words:(i + 1) * words]) for i in range(count)]


def model_folder(quick: bool, texts: list[str], folder: Path) -> str:
    """The model workers load: the embedded SmolLM2, or a tiny Llama saved with its tokenizer (``--quick``)."""
    if not quick:
        return "smollm2-135m-instruct"
    from structlm.testing import demo_tokenizer, tiny_llama

    tokenizer = demo_tokenizer(texts + [PREFIX, QUESTION])
    tiny_llama(len(tokenizer), hidden_size=128, layers=4).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def encode_rates(texts, model, work: Path, workers: int) -> dict:
    report = encode_corpus(texts, model, work / f"store{workers}", prefix=PREFIX, num_workers=workers,
                           batch_size=max(1, len(texts) // (4 * workers)), progress=False)
    assert report.encoded == len(texts) and not report.failed, report
    return {"total": report.seconds, "span": report.encode_seconds, "rate": len(texts) / report.seconds,
            "steady": len(texts) / max(1e-9, report.encode_seconds), "store": work / f"store{workers}"}


def query_costs(model: str, store: Path, texts: list[str], k: int, repeat: int) -> dict:
    lm = StructuredLM.from_pretrained(model, cache=SegmentCache(directory=store))
    picked = texts[len(texts) // 2: len(texts) // 2 + k]
    asked = iter(range(10**6))

    def new_plan():  # a new question each time (a word of the corpus appended): the query is always computed
        i = next(asked)
        return parallel(lm.tokenizer, picked, f"{QUESTION} {texts[i % len(texts)].split()[i // len(texts)]}",
                        prefix=PREFIX)

    out = {}

    def fresh(directory):
        lm.cache = lm.executor.cache = SegmentCache(directory=directory)
        lm.cache.bind(lm.fingerprint)
        lm.executor.joined.clear()

    for kind in ("disk", "memory", "scratch"):
        walls, cpus = [], []
        for _ in range(repeat):
            if kind == "disk":
                fresh(store)
            elif kind == "scratch":
                fresh(None)
            else:
                lm.executor.joined.clear()  # the joined-contexts fast path aside: LRU hits only
            plan = new_plan()
            from_disk = lm.cache.disk_hits
            _, wall, cpu, _ = timed(lambda: lm.forward(plan, backend="reuse", logits_for="last"))
            walls.append(wall)
            cpus.append(cpu)
            if kind == "disk":
                assert lm.cache.disk_hits == plan.num_segments - 1, lm.cache.stats()
            if kind == "memory":
                assert lm.cache.disk_hits == from_disk, "a memory query read the disk"
        out[kind] = (statistics.median(walls), statistics.median(cpus))
    out["tokens"] = len(plan)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contexts", type=int, default=None, help="contexts in the corpus (default 48; quick 32)")
    parser.add_argument("--words", type=int, default=100, help="words per context (~1.3 tokens each on SmolLM2)")
    parser.add_argument("--query-contexts", type=int, default=8, help="stored contexts a query reads")
    parser.add_argument("--repeat", type=int, default=3, help="timed queries per kind")
    parser.add_argument("--quick", action="store_true", help="a tiny random Llama instead of SmolLM2")
    args = parser.parse_args()
    count = args.contexts or (32 if args.quick else 48)
    texts = documents(count, args.words)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = model_folder(args.quick, texts, work / "model")
        start = time.perf_counter()
        ensure_ray(num_cpus=2, progress=False)
        print(f"model: {model}; {count} contexts of {args.words} words; local Ray cluster of 2 CPUs "
              f"(started in {time.perf_counter() - start:.1f} s)")
        rates = {w: encode_rates(texts, model, work, w) for w in (1, 2)}
        print(f"{'workers':>7} {'total s':>8} {'contexts/s':>11} {'encode span s':>14} {'steady ctx/s':>13}")
        for w, r in rates.items():
            print(f"{w:>7} {r['total']:>8.1f} {r['rate']:>11.2f} {r['span']:>14.1f} {r['steady']:>13.2f}")
        print(f"2 workers vs 1: {rates[2]['rate'] / rates[1]['rate']:.2f}x contexts/s overall, "
              f"{rates[2]['steady'] / rates[1]['steady']:.2f}x steady (2 CPUs shared with other work)")
        q = query_costs(model, rates[2]["store"], texts, args.query_contexts, args.repeat)
        print(f"query over {args.query_contexts} of {count} stored contexts ({q['tokens']} tokens), median of "
              f"{args.repeat}, wall ms (cpu ms):")
        for kind in ("disk", "memory", "scratch"):
            wall, cpu = q[kind]
            print(f"  {kind:>8}: {wall * 1e3:8.1f} ({cpu * 1e3:.1f})")
        print(f"warm from disk vs from memory: {q['disk'][0] / q['memory'][0]:.2f}x wall; "
              f"from scratch vs warm from disk: {q['scratch'][0] / q['disk'][0]:.1f}x wall")


if __name__ == "__main__":
    main()
