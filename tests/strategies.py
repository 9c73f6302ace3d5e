"""Hypothesis strategies shared by the plan, mask and runtime tests (the oracle is ``structlm.testing``)."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from structlm.plan import Plan, Segment
from structlm.testing import brute_force_mask  # noqa: F401  (re-exported for the tests)


@st.composite
def plans(draw, max_segments: int = 6, max_len: int = 9, acyclic: bool = False, vocab: int = 50,
          max_position: int | None = None):
    """Random plans: segment lengths, causal flags, start positions and edge sets.

    With ``acyclic`` edges only point to earlier segments (a DAG); otherwise any direction.
    """
    count = draw(st.integers(1, max_segments))
    plan = Plan()
    for i in range(count):
        length = draw(st.integers(1, max_len))
        ids = draw(st.lists(st.integers(1, vocab - 1), min_size=length, max_size=length))
        top = max(0, (max_position or 40) - length)
        start = draw(st.integers(0, top))
        causal = draw(st.booleans())
        plan.add(Segment(f"s{i}", input_ids=ids, start=start, causal=causal, role=draw(st.sampled_from(["a", "b"]))))
    names = plan.names
    for i, viewer in enumerate(names):
        candidates = names[:i] if acyclic else [n for n in names if n != viewer]
        if candidates:
            for viewed in draw(st.lists(st.sampled_from(candidates), max_size=len(candidates), unique=True)):
                plan.add_edge(viewer, viewed)
    return plan
