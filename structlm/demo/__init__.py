"""``structlm demo``: a tour of every part, offline, each step with one measured fact.

The real tour runs the embedded trained models: SmolLM2-135M-Instruct answers a question from parallel-encoded
documents (time to first token sequential / parallel / cached), MiniLM-L6 is probed for syntax and ranks docstrings for functions in one pass, SmolLM2 copies a
text while reading it. ``quick=True`` uses tiny random models instead (seconds, for CI). Sits on top, like the
CLI: it uses the core, the front-ends and the runtime.

Each part is a :class:`~structlm.demo.tour.Step` in :data:`STEPS`; a new part is one more line there.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from structlm.demo.candidates import candidate_step
from structlm.demo.code import code_step
from structlm.demo.graphs import graph_step
from structlm.demo.plans import plan_step
from structlm.demo.rag import rag_step
from structlm.demo.streams import stream_step
from structlm.demo.tour import Step, Tour

__all__ = ["run_demo", "STEPS", "Step", "Tour"]

STEPS: list[Step] = [
    Step("plans", plan_step),
    Step("RAG: parallel encoding, cache, APE", rag_step),
    Step("graphs: NT-LLM anchors", graph_step),
    Step("code: UniXcoder and AST-Probe", code_step),
    Step("candidates: Uni-Encoder, every candidate in one pass", candidate_step),
    Step("streams: reading while writing", stream_step),
]


def run_demo(out: str | None = None, say: Callable[[str], None] = print, quick: bool = False,
             steps: Sequence[Step] | None = None) -> float:
    """Run the tour (real models; ``quick``: tiny random ones); with ``out`` a folder, write its pictures there.

    Prints each step's title, its findings and its time; returns the total seconds.
    """
    folder = Path(out) if out else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    tour = Tour(say=say, out=folder, quick=quick)
    chosen = STEPS if steps is None else list(steps)
    kind = "tiny random models" if quick else "SmolLM2-135M-Instruct and MiniLM-L6"
    say(f"structlm demo: {len(chosen)} steps on {kind}")
    begin = time.perf_counter()
    for number, step in enumerate(chosen, 1):
        say(f"\n== {number}/{len(chosen)} {step.title}")
        start = time.perf_counter()
        step.run(tour)
        say(f"   ({time.perf_counter() - start:.1f} s)")
    total = time.perf_counter() - begin
    say(f"\ndemo finished in {total:.1f} s")
    return total
