"""The fuzz tests' counts and seeds, failure reports that replay with one command, and the replay entry.

Every plan comes from one integer seed (``random.Random(seed)``; the generators are ``tests.fuzz_masks.mask_case``
and ``tests.fuzz_runtime.runtime_case``), so a failure is reproduced by its seed alone::

    python -m tests.fuzz masks 1234          # the mask targets on the plan of seed 1234
    python -m tests.fuzz runtime 77          # the runtime backends on the plan of seed 77

Counts: the default run checks ``DEFAULT`` plans per target, ``-m fuzz`` checks ``FUZZ`` (override with
``STRUCTLM_FUZZ_SCALE``, a multiplier); the fuzz run starts at a new base seed each time (printed;
``STRUCTLM_FUZZ_BASE`` fixes it), the default run always checks the same seeds.
"""
from __future__ import annotations

import os
import random
import sys
import time
import traceback
from typing import Callable

from tests.fuzz_masks import check_mask_case, mask_case
from tests.fuzz_runtime import RuntimeChecker, runtime_case

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


def run_seeds(target: str, seeds: range, check: Callable[[int], None], first: int | None = None) -> float:
    """``check(seed)`` for every seed (raises on a failed check); the first failure
    is raised as a :class:`FuzzFailure`. Returns the seconds taken."""
    start = time.perf_counter()
    for seed in seeds:
        try:
            check(seed)
        except Exception as error:  # noqa: BLE001 - every failure becomes a replayable report
            raise failure(target, seed, describe(target, seed), error, first) from error
    return time.perf_counter() - start


def describe(target: str, seed: int) -> str:
    return (mask_case if target == "masks" else runtime_case)(seed).describe()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description="Replay one fuzz case by its seed.")
    parser.add_argument("target", choices=["masks", "runtime"])
    parser.add_argument("seed", type=int)
    parser.add_argument("--from", dest="first", type=int, default=None,
                        help="runtime: replay seeds FROM..SEED on one cached model (the cache state of the run)")
    args = parser.parse_args(argv)
    if args.target == "masks":
        check = check_mask_case
        seeds = range(args.seed, args.seed + 1)
    else:
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
