"""Streams: per-write latency of a StreamSession at a short and a long source, against re-encoding, in one run.

    python benchmarks/stream.py                      # SmolLM2-135M-Instruct (embedded), sources of 100 and 2,000 tokens
    python benchmarks/stream.py --quick              # a tiny random Llama (seconds; the numbers mean little)
    python benchmarks/stream.py --lengths 100 500 2000 --writes 20

* session write: ``StreamSession.write(1)`` after the source has been read — one target token, which encodes
  only the pending target token on top of the cache (nothing re-encoded). Median over ``--writes`` writes.
* two caches joined: the paper's inference loop — a source cache and a target cache kept apart and concatenated
  (per layer) into one cache for every write step, the new target slot split off again afterwards.
* re-encode: what a stream without separate caches does at every write — one forward of the whole stream so
  far (source + target, group positions, the shifted wait-k mask: the batch plan), last logits only.

Source text: the stdlib's pydoc_data topics, read in chunks of ~50 tokens (reading speed is not measured here).
Ratios: session at the long source / at the short one (flat is 1.0), and re-encode / session per length. Wall
time beside process CPU time (the machine is shared; CPU time is the steadier figure).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402

import torch  # noqa: E402

from measure import timed  # noqa: E402
from structlm import stream  # noqa: E402


def source_ids(tokenizer, length: int) -> list[list[int]]:
    """``length`` tokens of pydoc_data topics text, cut into chunks of about 50 tokens at word boundaries."""
    from pydoc_data.topics import topics

    words = " ".join(topics[name] for name in sorted(topics)).split()
    chunks, total, i = [], 0, 0
    while total < length:
        piece = tokenizer.encode(" " + " ".join(words[i:i + 35]), add_special_tokens=False)[: length - total]
        chunks.append(piece)
        total += len(piece)
        i += 35
    return chunks


def load(quick: bool):
    from structlm.hf import StructuredLM

    if quick:
        from structlm.testing import demo_tokenizer, tiny_llama
        from pydoc_data.topics import topics

        tok = demo_tokenizer([topics[name] for name in sorted(topics)[:40]], bos=False)
        return StructuredLM(tiny_llama(len(tok), max_positions=8192), tokenizer=tok), "tiny random Llama"
    from structlm.hf import load_embedded

    model, tok = load_embedded("smollm2-135m-instruct")
    return StructuredLM(model, tokenizer=tok), "SmolLM2-135M-Instruct (embedded, fp32)"


def joined_writes(lm, session, writes: int) -> tuple[list[float], list[float]]:
    """Wall and CPU time of ``writes`` one-token writes that join a separate source and target cache each step."""
    from transformers import DynamicCache

    from structlm.hf.call import mask_kind
    from structlm.masks import full_mask

    call = lm.call
    source = torch.nonzero(~session.is_target).squeeze(1).to(call.device)
    target = torch.nonzero(session.is_target).squeeze(1).to(call.device)
    layers = session.cache.layers
    src = [(layer.keys[:, :, source].clone(), layer.values[:, :, source].clone()) for layer in layers]
    tgt = [(layer.keys[:, :, target].clone(), layer.values[:, :, target].clone()) for layer in layers]
    token, position = session.pending[0], session.positions.phi + session.positions.target_length
    implementation = call.masked_implementation()
    walls, cpus = [], []
    for _ in range(writes):
        def step():
            cache = DynamicCache([(torch.cat([sk, tk], -2), torch.cat([sv, tv], -2))
                                  for (sk, sv), (tk, tv) in zip(src, tgt)])
            past = cache.get_seq_length()
            mask = full_mask(1, past + 1, mask_kind(implementation), call.dtype).to(call.device)
            with torch.no_grad(), call.implementation(implementation):
                out = call.base(input_ids=torch.tensor([[token]], device=call.device), attention_mask=mask,
                                position_ids=torch.tensor([[position]], device=call.device), cache=cache,
                                use_cache=True)
                for i, layer in enumerate(out.cache.layers):  # separate the new target slot again
                    tgt[i] = (torch.cat([tgt[i][0], layer.keys[:, :, -1:]], -2),
                              torch.cat([tgt[i][1], layer.values[:, :, -1:]], -2))
                return int(call.head(out.last_hidden_state[:, -1]).argmax())
        token, wall, cpu, _ = timed(step)
        position += 1
        walls.append(wall)
        cpus.append(cpu)
    return walls, cpus


def measure(lm, length: int, writes: int, reencode_repeat: int) -> dict[str, float]:
    from structlm.hf import StreamSession

    tok = lm.tokenizer
    template = stream.StreamTemplate(target_start=tok.encode("\nCopy:", add_special_tokens=False))
    session = StreamSession(lm, template=template, phi=0, eos_token_id=[])
    for chunk in source_ids(tok, length):
        session.read(chunk)
    session.write(1)  # the header: warm-up, not timed
    walls, cpus = [], []
    for _ in range(writes):
        _, wall, cpu, _ = timed(lambda: session.write(1))
        walls.append(wall)
        cpus.append(cpu)
    joined_wall, joined_cpu = joined_writes(lm, session, writes)
    plan = session.plan()
    assert session.encoded["source"] == sum(len(c) for c in session.source_chunks), "source re-encoded"
    re_walls, re_cpus = [], []
    for _ in range(reencode_repeat):
        _, wall, cpu, _ = timed(lambda: lm.forward(plan, backend="dense", logits_for="last"))
        re_walls.append(wall)
        re_cpus.append(cpu)
    return {"tokens": len(plan), "wall": statistics.median(walls), "cpu": statistics.median(cpus),
            "join_wall": statistics.median(joined_wall), "join_cpu": statistics.median(joined_cpu),
            "re_wall": statistics.median(re_walls), "re_cpu": statistics.median(re_cpus)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 2000], help="source lengths in tokens")
    parser.add_argument("--writes", type=int, default=20, help="timed one-token writes per length")
    parser.add_argument("--reencode-repeat", type=int, default=3, help="timed re-encodings per length")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="a tiny random Llama instead of SmolLM2")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm, name = load(args.quick)
    print(f"model: {name}; torch threads {torch.get_num_threads()}; {args.writes} one-token writes per length")
    rows = {length: measure(lm, length, args.writes, args.reencode_repeat) for length in args.lengths}
    print(f"{'source':>7} {'stream':>7} {'write ms':>9} {'(cpu)':>7} {'joined ms':>10} {'(cpu)':>7} "
          f"{'re-encode ms':>13} {'(cpu)':>8}  re-encode/write")
    for length, r in rows.items():
        print(f"{length:>7} {r['tokens']:>7} {r['wall'] * 1e3:>9.1f} {r['cpu'] * 1e3:>7.1f} {r['join_wall'] * 1e3:>10.1f} "
              f"{r['join_cpu'] * 1e3:>7.1f} {r['re_wall'] * 1e3:>13.1f} {r['re_cpu'] * 1e3:>8.1f}  "
              f"{r['re_wall'] / r['wall']:.1f}x wall {r['re_cpu'] / r['cpu']:.1f}x cpu")
    short, long = rows[min(rows)], rows[max(rows)]
    print(f"per-write latency, source {max(rows)} vs {min(rows)} tokens: {long['wall'] / short['wall']:.2f}x wall, "
          f"{long['cpu'] / short['cpu']:.2f}x cpu (goal <= 1.5)")
    print(f"two caches joined per write step vs the session at {max(rows)} tokens: "
          f"{long['join_wall'] / long['wall']:.2f}x wall, {long['join_cpu'] / long['cpu']:.2f}x cpu")
    print(f"re-encoding the stream at every write vs the session at {max(rows)} tokens: "
          f"{long['re_wall'] / long['wall']:.1f}x wall, {long['re_cpu'] / long['cpu']:.1f}x cpu (goal >= 20)")


if __name__ == "__main__":
    main()
