"""Seeded random plans for the fuzz tests, failure reports that replay with one command, and the replay entry.

Every plan comes from one integer seed (``random.Random(seed)``), so a failure is reproduced by its seed alone::

    python -m tests.fuzz masks 1234          # the mask targets on the plan of seed 1234
    python -m tests.fuzz runtime 77          # the runtime backends on the plan of seed 77

Counts: the default run checks ``DEFAULT`` plans per target, ``-m fuzz`` checks ``FUZZ`` (override with
``STRUCTLM_FUZZ_SCALE``, a multiplier); the fuzz run starts at a new base seed each time (printed;
``STRUCTLM_FUZZ_BASE`` fixes it), the default run always checks the same seeds.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch

from structlm import Plan, Segment, and_masks, anchor, or_masks, sliding_window

#: plans per target: default run, -m fuzz
DEFAULT = {"masks": 1200, "runtime": 100}
FUZZ = {"masks": 20_000, "runtime": 2_000}


def fuzz_base(marked: bool) -> int:
    """The first seed: 0 in the default run; under -m fuzz ``STRUCTLM_FUZZ_BASE`` or a fresh one per run."""
    if not marked:
        return 0
    if "STRUCTLM_FUZZ_BASE" in os.environ:
        return int(os.environ["STRUCTLM_FUZZ_BASE"])
    return random.SystemRandom().randrange(1_000_000, 2**31)


def fuzz_count(target: str, marked: bool) -> int:
    scale = float(os.environ.get("STRUCTLM_FUZZ_SCALE", "1"))
    return max(1, int((FUZZ if marked else DEFAULT)[target] * scale))


def chunk_seeds(target: str, chunk: int, chunks: int, base: int) -> range:
    """The seeds of one of ``chunks`` equal parts of the -m fuzz count of ``target``, from ``base``."""
    count = fuzz_count(target, marked=True)
    per = -(-count // chunks)
    first = base + chunk * per
    return range(first, min(base + count, first + per))


# --------------------------------------------------------------------------------------------- mask cases
@dataclass
class MaskCase:
    """A random plan and a random refinement (a small and/or tree of windows and anchors, JSON-able)."""

    seed: int
    plan: Plan
    refine: Any  # None | ["window", w, "index" | "positions"] | ["anchor", name] | ["and" | "or", a, b]

    def describe(self) -> str:
        return json.dumps({"refine": self.refine, "plan": json.loads(self.plan.to_json())})


def segment_lengths(rng: random.Random) -> list[int]:
    """Mostly small plans (tens of tokens), and the issue's ranges reached: up to 64 segments, up to 300 tokens
    in a segment, both in one plan now and then (a few long segments among many short ones: ~1–2k tokens)."""
    kind = rng.random()
    if kind < 0.78:
        longest = rng.randint(1, 24)
        return [rng.randint(1, longest) for _ in range(rng.randint(1, 8))]
    if kind < 0.92:
        longest = rng.randint(1, 8)
        return [rng.randint(1, longest) for _ in range(rng.randint(9, 64))]
    if kind < 0.98:
        return [rng.randint(24, 300) for _ in range(rng.randint(1, 6))]
    lengths = [rng.randint(1, 12) for _ in range(rng.randint(40, 64))]
    for i in rng.sample(range(len(lengths)), 3):
        lengths[i] = rng.randint(150, 300)
    return lengths


def _positions(rng: random.Random, length: int, floats: bool) -> dict:
    """Segment keyword arguments for positions: a start, or an explicit vector (int or float)."""
    mode = rng.random()
    if mode < 0.5:
        start = rng.randint(0, 400)
        return {"start": start + 0.5 if floats and rng.random() < 0.5 else start}
    if floats:
        values = [rng.uniform(0, 500) for _ in range(length)]
        return {"positions": torch.tensor(values, dtype=rng.choice([torch.float32, torch.float64]))}
    values = sorted(rng.randint(0, 600) for _ in range(length)) if mode < 0.8 else \
        [rng.randint(0, 600) for _ in range(length)]
    return {"positions": values}


def random_edges(rng: random.Random, names: list[str], acyclic: bool) -> list[tuple[str, str]]:
    density = rng.choice([0.0, 0.1, 0.3, 0.6, 1.0, rng.random()])
    edges = []
    for i, viewer in enumerate(names):
        for j, viewed in enumerate(names):
            if i != j and (j < i or not acyclic) and rng.random() < density:
                edges.append((viewer, viewed))
    return edges


def random_refine(rng: random.Random, plan: Plan, depth: int = 0) -> Any:
    leaf = depth >= 2 or rng.random() < 0.5
    if leaf:
        if rng.random() < 0.6:
            return ["window", rng.choice([1, 2, 3, 7, 16, 50, 400]), rng.choice(["index", "positions"])]
        return ["anchor", rng.choice(plan.names)]
    return [rng.choice(["and", "or"]), random_refine(rng, plan, depth + 1), random_refine(rng, plan, depth + 1)]


def mask_case(seed: int) -> MaskCase:
    """The plan and refinement of ``seed`` (segment counts 1–64, lengths 1–300, any causal flags and edges)."""
    rng = random.Random(seed)
    floats = rng.random() < 0.25
    segments = []
    for i, length in enumerate(segment_lengths(rng)):
        ids = [rng.randint(0, 999) for _ in range(length)]
        segments.append(Segment(f"s{i}", input_ids=ids, causal=rng.random() < 0.6, role=rng.choice("abc"),
                                **_positions(rng, length, floats and rng.random() < 0.7)))
    names = [s.name for s in segments]
    plan = Plan(segments, random_edges(rng, names, acyclic=rng.random() < 0.6))
    refine = None if rng.random() < 0.4 else random_refine(rng, plan)
    return MaskCase(seed, plan, refine)


def refinement(spec: Any, plan: Plan) -> tuple[Callable | None, Callable | None]:
    """(mask function from structlm, independent oracle ``(q, k) -> bool``) of a refinement spec."""
    if spec is None:
        return None, None
    kind = spec[0]
    if kind == "window":
        width, by = spec[1], spec[2]
        if by == "index":
            return sliding_window(width), lambda q, k: (q - k) < width
        pos = plan.position_ids[0]
        return sliding_window(width, position_ids=pos), lambda q, k: (pos[q] - pos[k]) < width
    if kind == "anchor":
        start, end = plan.spans[spec[1]]
        return anchor(plan, spec[1]), lambda q, k: (k >= start) & (k < end) & (q >= 0)
    (fa, oa), (fb, ob) = refinement(spec[1], plan), refinement(spec[2], plan)
    if kind == "and":
        return and_masks(fa, fb), lambda q, k: oa(q, k) & ob(q, k)
    return or_masks(fa, fb), lambda q, k: oa(q, k) | ob(q, k)


# --------------------------------------------------------------------------------------------- reports
def replay_command(target: str, seed: int, first: int | None = None) -> str:
    after = f" --from {first}" if first is not None and first != seed else ""
    return f"python -m tests.fuzz {target} {seed}{after}"


class FuzzFailure(AssertionError):
    """A check failed on a seeded plan: the message holds the seed, the plan as JSON and the replay command."""


def failure(target: str, seed: int, described: str, error: BaseException, first: int | None = None) -> FuzzFailure:
    detail = "".join(traceback.format_exception_only(type(error), error)).strip()
    return FuzzFailure(
        f"{target} fuzz failed on seed {seed}: {detail}\n"
        f"replay: {replay_command(target, seed, first)}\n"
        f"case (JSON): {described}"
    )


def run_seeds(target: str, seeds: range, check: Callable[[int], str], first: int | None = None) -> float:
    """``check(seed)`` for every seed (returns the case as JSON, raises on a failed check); the first failure
    is raised as a :class:`FuzzFailure`. Returns the seconds taken."""
    start = time.perf_counter()
    for seed in seeds:
        try:
            check(seed)
        except Exception as error:  # noqa: BLE001 - every failure becomes a replayable report
            raise failure(target, seed, describe(target, seed), error, first) from error
    return time.perf_counter() - start


def describe(target: str, seed: int) -> str:
    if target == "masks":
        return mask_case(seed).describe()
    from tests.fuzz_runtime import runtime_case

    return runtime_case(seed).describe()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description="Replay one fuzz case by its seed.")
    parser.add_argument("target", choices=["masks", "runtime"])
    parser.add_argument("seed", type=int)
    parser.add_argument("--from", dest="first", type=int, default=None,
                        help="runtime: replay seeds FROM..SEED on one cached model (the cache state of the run)")
    args = parser.parse_args(argv)
    if args.target == "masks":
        from tests.fuzz_masks import check_mask_case as check

        seeds = range(args.seed, args.seed + 1)
    else:
        from tests.fuzz_runtime import RuntimeChecker

        checker = RuntimeChecker()
        check = checker.check
        seeds = range(args.seed if args.first is None else args.first, args.seed + 1)
    print(describe(args.target, args.seed))
    try:
        run_seeds(args.target, seeds, check, args.first)
    except FuzzFailure as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        if args.target == "runtime":
            checker.close()
    print(f"ok: {args.target} seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
