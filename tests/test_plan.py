"""Plan core: construction, derived tensors, errors, JSON."""
from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings

from structlm import Plan, PlanError, Segment
from tests.strategies import plans


def small_plan() -> Plan:
    plan = Plan()
    plan.add(Segment("prefix", input_ids=[1, 2, 3], role="prefix"))
    plan.add(Segment("a", input_ids=[4, 5], start=3, role="context"), sees=["prefix"])
    plan.add(Segment("b", input_ids=[6, 7, 8], start=3, causal=False, role="context"), sees="prefix")
    plan.add(Segment("q", input_ids=[9], start=6, role="query"), sees=["prefix", "a", "b"])
    return plan


def test_derived_tensors():
    plan = small_plan()
    assert len(plan) == 9
    assert plan.input_ids.tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9]]
    assert plan.position_ids.tolist() == [[0, 1, 2, 3, 4, 3, 4, 5, 6]]
    assert plan.segment_ids.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3]
    assert plan.spans == {"prefix": (0, 3), "a": (3, 5), "b": (5, 8), "q": (8, 9)}
    assert plan.sees("q") == ["prefix", "a", "b"]
    assert plan["b"].causal is False
    assert "a" in plan and "zz" not in plan
    assert "9 tokens" in repr(plan) and "4 segments" in repr(plan)


def test_explicit_and_float_positions():
    seg = Segment("x", input_ids=[1, 2, 3], positions=[0.0, 0.5, 1.0])
    assert seg.positions.dtype == torch.float32
    plan = Plan([Segment("a", input_ids=[1]), seg], [("x", "a")])
    assert plan.position_ids.dtype == torch.float32
    assert plan.position_ids.tolist() == [[0.0, 0.0, 0.5, 1.0]]
    assert Segment("y", input_ids=[1, 2], positions=[7, 3]).positions.tolist() == [7, 3]


def test_inputs_embeds_mixes_ids_and_soft_tokens():
    emb = torch.nn.Embedding(20, 4)
    soft = torch.randn(2, 4)
    plan = Plan()
    plan.add(Segment("text", input_ids=[3, 4]))
    plan.add(Segment("node", embeds=soft, start=2, causal=False, role="node"), sees=["text"])
    plan.add(Segment("tail", input_ids=[5], start=4), sees=["text", "node"])
    out = plan.inputs_embeds(emb)
    assert out.shape == (1, 5, 4)
    assert torch.equal(out[0, 2:4], soft)
    assert torch.equal(out[0, 0], emb.weight[3])
    with pytest.raises(PlanError, match="inputs_embeds"):
        plan.input_ids
    with pytest.raises(PlanError, match="width 3"):
        Plan([Segment("n", embeds=torch.randn(1, 3))]).inputs_embeds(emb)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Plan([Segment("a", input_ids=[1]), Segment("a", input_ids=[2])]), "duplicate segment name 'a'"),
        (lambda: Plan([Segment("a", input_ids=[1])], [("a", "zz")]), "unknown segment 'zz'"),
        (lambda: Plan([Segment("a", input_ids=[1])], [("a", "a")]), "cannot see itself"),
        (lambda: Plan().add(Segment("a", input_ids=[1]), sees=["a"]), "cannot see itself"),
        (lambda: Segment("a", input_ids=[]), "empty"),
        (lambda: Segment("a", input_ids=[1, 2], positions=[0]), "1 positions for 2 tokens"),
        (lambda: Segment("a", input_ids=[1], embeds=torch.zeros(1, 2)), "both"),
        (lambda: Segment("a"), "neither"),
        (lambda: Segment("a", input_ids=[1.5]), "integers"),
        (lambda: Segment("a", input_ids=[[1, 2], [3, 4]]), "one sequence"),
        (lambda: Segment("a", embeds=torch.zeros(3)), r"\[len, hidden\]"),
        (lambda: Segment("", input_ids=[1]), "non-empty string name"),
        (lambda: Segment("a", input_ids=[1], positions=[float("nan")]), "finite"),
        (lambda: Plan().input_ids, "no segments"),
    ],
)
def test_plan_errors(build, message):
    with pytest.raises(PlanError, match=message):
        build()


def test_plan_error_is_value_error():
    assert issubclass(PlanError, ValueError)


def test_schedule_levels_and_cycle_message():
    plan = small_plan()
    assert plan.schedule() == [["prefix"], ["a", "b"], ["q"]]
    plan.add_edge("prefix", "q")
    with pytest.raises(PlanError, match=r"cyclic \((prefix -> q -> prefix|q -> prefix -> q)\)"):
        plan.schedule()
    assert not plan.is_acyclic()


@settings(max_examples=60, deadline=None)
@given(plans())
def test_schedule_respects_every_edge_or_names_a_real_cycle(plan):
    try:
        levels = plan.schedule()
    except PlanError as error:
        # the named cycle must be made of real edges
        text = str(error)
        cycle = text[text.index("(") + 1: text.index(")")].split(" -> ")
        assert cycle[0] == cycle[-1] and len(cycle) >= 3
        for viewer, viewed in zip(cycle, cycle[1:]):
            assert (viewer, viewed) in plan.edges
        return
    level_of = {name: i for i, level in enumerate(levels) for name in level}
    assert sorted(level_of) == sorted(plan.names)
    for viewer, viewed in plan.edges:
        assert level_of[viewed] < level_of[viewer]


@settings(max_examples=60, deadline=None)
@given(plans())
def test_json_round_trip_is_identity(plan):
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.edges == plan.edges
    assert torch.equal(again.position_ids, plan.position_ids)


def test_json_round_trip_with_soft_tokens_and_float_positions():
    plan = Plan()
    plan.add(Segment("t", input_ids=[1, 2]))
    plan.add(Segment("n", embeds=torch.randn(2, 3, dtype=torch.float64), positions=[2.5, 3.5], causal=False), sees="t")
    again = Plan.from_json(plan.to_json(indent=1))
    assert again == plan
    assert again["n"].embeds.dtype == torch.float64


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"format": "other"}', "not a structlm plan"),
        ('{"format": "structlm.plan", "version": 99, "segments": []}', "version 99"),
        ('{"format": "structlm.plan", "version": 1}', "'segments' list"),
        ('{"format": "structlm.plan", "version": 1, "segments": [{"role": "x"}]}', "name"),
        ('{"format": "structlm.plan", "version": 1, "segments": [{"name": "a", "input_ids": ["x"]}]}', "list of integers"),
        ('{"format": "structlm.plan", "version": 1, "segments": [{"name": "a", "input_ids": [1], "bogus": 1}]}', "unknown fields"),
        ('{"format": "structlm.plan", "version": 1, "segments": [{"name": "a", "input_ids": [1]}], "edges": [["a"]]}', "viewer, viewed"),
        ('{"format": "structlm.plan", "version": 1, "segments": [{"name": "a", "input_ids": [1]}], "edges": [["a", "b"]]}', "unknown segment 'b'"),
        ('{"format": "structlm.plan", "version": 1, "segments": [{"name": "a", "input_ids": [1], "positions": [[1]]}]}', "1-D"),
        ('{"format": "structlm.plan", "version": 1, "segments": [{"name": "a", "embeds": [[1, "x"]]}]}', "malformed"),
        ('{"format": "structlm.plan", "version": 1, "segments": [{"name": "a", "input_ids": [1], "positions_dtype": "complex64", "positions": [0]}]}', "unsupported dtype"),
    ],
)
def test_from_json_rejects_malformed_files(text, message):
    with pytest.raises(PlanError, match=message):
        Plan.from_json(text)


def test_subplan_keeps_edges_among_kept_segments():
    plan = small_plan()
    sub = plan.subplan(["prefix", "a", "q"])
    assert sub.names == ["prefix", "a", "q"]
    assert sub.edges == [("a", "prefix"), ("q", "prefix"), ("q", "a")]
    json.loads(sub.to_json())
