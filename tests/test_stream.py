"""Streams front-end: group positions, the shifted wait-k mask (the paper's worked example), labels, AL/LAAL."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from structlm import stream
from structlm.errors import PlanError, PositionRangeError
from structlm.stream import Replay, StreamTemplate, WaitK

EXAMPLE = """
A  x x x x . . x . . . .
t1 x x x x x . x x . . .
t2 x x x x x x x x x . .
t3 x x x x x x x x x x .
e  x x x x x x x x x x x
"""


def example_plan():
    """Research note §3.2: k=2, a 2-token prompt, 3 source words, end tag, 1-token header, 3 target words, end."""
    template = StreamTemplate(source_end=[13], target_start=[19], target_end=[23])
    return stream.plan([[10], [11], [12]], [[20], [21], [22]], policy=WaitK(2), prompt=[1, 2], template=template)


def test_training_mask_is_the_papers_worked_example_cell_for_cell():
    plan = example_plan()
    mask = plan.dense_mask()[0, 0]
    expected = torch.tensor([[c == "x" for c in line.split()[1:]] for line in EXAMPLE.strip().splitlines()])
    assert torch.equal(mask[6:], expected)
    assert torch.equal(mask[:6, :6], torch.ones(6, 6, dtype=torch.bool).tril())  # source: causal over source
    assert not mask[:6, 6:].any()  # source never sees target
    assert plan.position_ids.tolist() == [[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4]]  # φ = 0: the groups overlap


def paper_mask(prompt, sources, header, targets, frontier):
    """The paper's construction, token by token: causal packing, wait-k source blocks per target chunk, then the
    shift (row i takes row i+1's source columns), written independently of structlm.stream."""
    src_seg = [len(prompt)] + [len(s) for s in sources]
    tgt_tokens = [(0, t) for t in header] + [(j, t) for j, chunk in enumerate(targets) for t in chunk]
    s, t = sum(src_seg), len(tgt_tokens)
    mask = torch.ones(s + t, s + t, dtype=torch.bool).tril()
    for i, (chunk, _) in enumerate(tgt_tokens):
        mask[s + i, sum(src_seg[:1 + frontier[chunk]]):s] = False
    for i in range(s, s + t - 1):
        mask[i, :s] = mask[i + 1, :s].clone()
    return mask


@st.composite
def streams(draw):
    n_src = draw(st.integers(1, 5))
    n_tgt = draw(st.integers(1, 5))
    sources = [draw(st.lists(st.integers(5, 60), min_size=1, max_size=3)) for _ in range(n_src)]
    targets = [draw(st.lists(st.integers(5, 60), min_size=1, max_size=3)) for _ in range(n_tgt)]
    steps = ["read"] + draw(st.lists(st.sampled_from(["read", "write"]), max_size=12))
    prompt = draw(st.lists(st.integers(5, 60), max_size=3))
    header = draw(st.lists(st.integers(5, 60), max_size=2))
    phi = draw(st.sampled_from([0, 3, 7, 2.5]))
    return sources, targets, steps, prompt, header, phi


@settings(max_examples=80, deadline=None)
@given(streams())
def test_mask_equals_the_papers_construction_and_positions_stay_grouped(case):
    sources, targets, steps, prompt, header, phi = case
    policy = Replay(steps)
    plan = stream.plan(sources, targets, policy=policy, phi=phi, prompt=prompt or None,
                       template=StreamTemplate(target_start=header))
    frontier = stream.frontiers(policy, len(sources), len(targets))
    assert torch.equal(plan.dense_mask()[0, 0], paper_mask(prompt, sources, header, targets, frontier))
    s = len(prompt) + sum(map(len, sources))
    t = len(header) + sum(map(len, targets))
    positions = plan.position_ids[0]
    assert torch.equal(positions[:s], torch.arange(s).to(positions.dtype))
    assert torch.allclose(positions[s:].double(), phi + torch.arange(t, dtype=torch.float64))
    assert plan.input_ids[0, s:].tolist() == header + [x for c in targets for x in c]
    assert not plan.dense_mask()[0, 0, :s, s:].any()


def test_wait_k_frontiers_and_actions():
    assert stream.frontiers(WaitK(2), 4, 4) == [2, 3, 4, 4]
    assert stream.actions(WaitK(1), 2, 3) == ["read", "write", "read", "write", "write"]
    assert stream.frontiers(lambda r, w: "read", 3, 2) == [3, 3]  # read-everything-first: the offline baseline
    assert stream.frontiers(3, 5, 2) == [3, 4]  # an int is WaitK(k)


def test_labels_mark_written_target_tokens_only():
    plan = example_plan()
    assert stream.labels(plan).tolist() == [[-100] * 7 + [20, 21, 22, 23]]
    bare = stream.plan([[10], [11]], [[20, 21], [22]], policy=WaitK(1))
    assert stream.labels(bare).tolist() == [[-100, -100, -100, 21, 22]]  # no header: nothing predicts token 20


def test_float_phi_and_text_chunks():
    from structlm.text import demo_tokenizer

    words = "the cat sat on the mat"
    tok = demo_tokenizer([words, "le chat"], bos=True)
    plan = stream.plan(stream.split_words(words), ["le", "chat"], policy=WaitK(2), phi=0.5, prompt="the",
                       tokenizer=tok)
    assert plan.input_ids[0, 0] == tok.bos_token_id  # the BOS once, at the start of the source group
    assert plan.position_ids.dtype == torch.float32
    assert plan.position_ids[0, -2:].tolist() == [0.5, 1.5]


@pytest.mark.parametrize("phi", [-1, True, float("nan"), float("inf"), "0"])
def test_phi_must_be_a_non_negative_number(phi):
    with pytest.raises(PlanError, match="phi"):
        stream.plan([[10]], [[20]], phi=phi)


def test_errors_say_what_to_do():
    with pytest.raises(PlanError, match="source chunk 1 is empty"):
        stream.plan([[10], []], [[20]])
    with pytest.raises(PlanError, match="target chunk 0 is empty"):
        stream.plan([[10]], [[]])
    with pytest.raises(PlanError, match="at least one source chunk"):
        stream.plan([], [[20]])
    with pytest.raises(PlanError, match="before any source chunk"):
        stream.plan([[10]], [[20]], policy=lambda r, w: "write")
    with pytest.raises(PlanError, match="answered 'wait'"):
        stream.plan([[10], [11]], [[20]], policy=lambda r, w: "wait")
    with pytest.raises(PlanError, match="k >= 1"):
        WaitK(0)
    with pytest.raises(PositionRangeError, match="positions 0..7"):
        stream.plan([[10] * 5, [11] * 5], [[20]], max_positions=8)
    with pytest.raises(PositionRangeError, match="lower phi"):
        stream.plan([[10]], [[20]], phi=8, max_positions=8)
    with pytest.raises(TypeError, match="lists of chunks"):
        stream.plan("a b c", ["x"])


def test_average_lagging_and_laal_follow_simuleval():
    delays = [2, 3, 4, 5, 5]  # wait-2 on 5 source words, 5 target words
    assert stream.al(delays, 5) == 2.0 and stream.laal(delays, 5) == 2.0
    assert stream.al(delays, 5, reference_length=10) == pytest.approx(2.75)
    assert stream.laal(delays, 5, reference_length=10) == pytest.approx(2.75)
    assert stream.al(delays, 5, reference_length=3) == pytest.approx(1.0)  # a long output looks fast under AL
    assert stream.laal(delays, 5, reference_length=3) == pytest.approx(2.0)  # … but not under LAAL
    assert stream.al([5, 5], 5) == 5.0  # offline: the whole source before the first word
    assert stream.delays_from_trace(["read", "read", "write", "read", "read", "write"], 3) == [2, 3]
    with pytest.raises(ValueError, match="empty"):
        stream.al([], 5)
    assert math.isfinite(stream.laal([1, 2, 3], 3, reference_length=2))


def test_trace_text_and_picture(tmp_path):
    steps = ["read", "read", "write", "read", "write", "write"]
    text = stream.trace_text(steps, [" the", " cat", " sat"], ["le", " chat", " assis"])
    assert text.splitlines()[1].split()[:3] == ["2", "the", "cat"] and "'assis'" in text.splitlines()[3]
    path = tmp_path / "trace.png"
    stream.show_trace(steps, [" the", " cat", " sat"], ["le", " chat", " assis"], path=str(path), k=2)
    assert path.stat().st_size > 1000
