"""Hostile plan files: truncated, random bytes, wrong types, huge or negative numbers, unknown keys, deep nesting.

Each class gets a hypothesis test asserting the specific ``PlanError`` message; numbers a plan may hold but a model
cannot (negative or out-of-range positions) load and are refused by the runtime with ``PositionRangeError``.
A valid file always reads back to the same plan.
"""
from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from structlm import Plan, PlanError
from structlm.errors import PositionRangeError
from structlm.hf import StructuredLM
from tests.strategies import plans
from tests.test_runtime import model

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: a value of every JSON type, and how each is described in Python
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=False, width=32),
                        st.text(max_size=4), st.lists(st.integers(0, 3), max_size=2),
                        st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))

#: per segment field: values of the wrong type, and the message naming what is wrong
WRONG_TYPES = {
    "name": (st.one_of(st.none(), st.integers(), st.lists(st.text(), max_size=1), st.just("")),
             "non-empty string name"),
    "causal": (st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.booleans(), max_size=1)),
               "causal must be true or false"),
    "role": (st.one_of(st.none(), st.integers(), st.booleans(), st.lists(st.text(), max_size=1)),
             "role must be a string"),
    "input_ids": (st.one_of(st.integers(), st.text(max_size=3), st.lists(st.floats(0, 5), min_size=1, max_size=3),
                            st.lists(st.booleans(), min_size=1, max_size=2), st.lists(st.lists(st.integers(0, 5)),
                                                                                               min_size=1)),
                  "input_ids must be a list of integers"),
    "positions": (st.one_of(st.integers(), st.text(max_size=3), st.lists(st.floats(0.1, 5.0).filter(
        lambda x: not x.is_integer()), min_size=1, max_size=3), st.lists(st.booleans(), min_size=1, max_size=2)),
        "positions must be a list of torch.int64 numbers"),
    "positions_dtype": (st.one_of(st.integers(), st.sampled_from(["int8", "uint8", "float", "complex64", ""])),
                        "unsupported dtype"),
}


def plan_dict(plan: Plan) -> dict:
    return json.loads(plan.to_json())


@SETTINGS
@given(plans(max_segments=4, max_len=6), st.data())
def test_truncated_plan_file(plan, data):
    text = plan.to_json()
    cut = data.draw(st.integers(0, len(text) - 1))
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.from_json(text[:cut])
    assert Plan.from_json(text) == plan  # the whole file reads back


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(blob):
    try:
        json.loads(blob)
    except (ValueError, RecursionError):
        with pytest.raises(PlanError, match="not valid JSON"):
            Plan.from_json(blob)
        return
    with pytest.raises(PlanError):  # valid JSON by chance ("1", "[]", "{}"): still not a plan
        Plan.from_json(blob)


@SETTINGS
@given(plans(max_segments=3, max_len=4), st.data())
def test_wrong_types_in_a_segment(plan, data):
    field = data.draw(st.sampled_from(sorted(WRONG_TYPES)))
    values, message = WRONG_TYPES[field]
    value = data.draw(values)
    content = plan_dict(plan)
    index = data.draw(st.integers(0, len(content["segments"]) - 1))
    content["segments"][index][field] = value
    if field == "positions_dtype":
        message = "unsupported dtype"
    with pytest.raises(PlanError, match=message):
        Plan.from_json(json.dumps(content))


@SETTINGS
@given(st.sampled_from(["format", "version", "segments", "edges"]), JSON_VALUES)
def test_wrong_types_at_the_top(field, value):
    content = plan_dict(Plan.from_json(_small_plan()))
    assume(not (type(value) is type(content[field]) and value == content[field]))
    content[field] = value
    messages = {"format": "not a structlm plan", "version": "version .* is not supported",
                "segments": "'segments' list|not an object with a 'name'|unknown segment", "edges": "'edges' list|edge must be"}
    if field == "edges" and value == []:
        return
    with pytest.raises(PlanError, match=messages[field]):
        Plan.from_json(json.dumps(content))


def _small_plan() -> str:
    return json.dumps({"format": "structlm.plan", "version": 1, "edges": [["b", "a"]], "segments": [
        {"name": "a", "input_ids": [1, 2], "causal": True, "role": "x"},
        {"name": "b", "input_ids": [3], "positions": [2], "causal": False, "role": "y"}]})


@SETTINGS
@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=2**63)), st.sampled_from(["input_ids", "positions"]))
def test_huge_or_negative_numbers(number, field):
    content = json.loads(_small_plan())
    content["segments"][0][field] = [1, number]
    if field == "positions" and -2**63 <= number < 0:
        plan = Plan.from_json(json.dumps(content))  # a plan may hold negative positions; a model may not
        assert plan["a"].positions.tolist() == [1, number]
        return
    message = "non-negative token ids" if -2**63 <= number < 0 else "does not fit in 64 bits"
    with pytest.raises(PlanError, match=message):
        Plan.from_json(json.dumps(content))


@settings(max_examples=12, deadline=None)
@given(st.one_of(st.integers(-2**62, -1), st.integers(256, 2**62)))
def test_positions_a_model_cannot_hold_are_refused_by_the_runtime(position):
    content = json.loads(_small_plan())
    content["segments"][1]["positions"] = [position]
    plan = Plan.from_json(json.dumps(content))
    with pytest.raises(PositionRangeError, match="negative positions|max_position_embeddings=256"):
        StructuredLM(model("llama")).forward(plan)


@SETTINGS
@given(st.text(min_size=1, max_size=8), JSON_VALUES, st.booleans())
def test_unknown_keys(key, value, at_top):
    content = json.loads(_small_plan())
    target = content if at_top else content["segments"][1]
    assume(key not in target)
    known = {"format", "version", "segments", "edges"} if at_top else set(target) | {"embeds", "embeds_dtype",
                                                                                       "positions_dtype"}
    assume(key not in known)
    target[key] = value
    with pytest.raises(PlanError, match="unknown fields"):
        Plan.from_json(json.dumps(content))


@SETTINGS
@given(st.integers(4, 200_000), st.sampled_from(["[", '{"a":'] ), st.sampled_from(["top", "segments", "input_ids",
                                                                                     "embeds"]))
def test_deep_nesting(depth, opener, where):
    # from depth 4 on nothing here is valid ([1] are ids, [[1]] and [[[1]]] embeds of one token)
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    if where == "top":
        text = nested
    else:
        content = json.loads(_small_plan())
        if where == "segments":
            content["segments"] = "@"
        else:
            content["segments"][0].pop("input_ids")
            content["segments"][0][where] = "@"
        text = json.dumps(content).replace('"@"', nested)
    # beyond the JSON reader's depth: named as such; shallower: refused for what the nested value is
    with pytest.raises(PlanError, match="nested too deeply" if depth > 5000 else None):
        Plan.from_json(text)


def test_named_examples_of_each_class():
    good = _small_plan()
    assert Plan.from_json(good).edges == [("b", "a")]
    bad = {
        good[:40]: "not valid JSON",
        b"\xff\xfe\x00\x01": "not valid JSON",
        good.replace('"causal": false', '"causal": "false"'): "causal must be true or false",
        good.replace('"positions": [2]', '"positions": [2.5]'): "positions must be a list of torch.int64",
        good.replace('"version": 1', '"version": true'): "version True is not supported",
        good.replace('"input_ids": [3]', '"input_ids": [3], "embeds": null, "colour": 1'): "unknown fields",
        good.replace('"edges"', '"extra": 1, "edges"'): r"unknown fields \['extra'\]",
        "[" * 100_000 + "]" * 100_000: "nested too deeply",
        good.replace('"input_ids": [3]', '"embeds": [[NaN, 1.0]]'): "NaN or infinite",
    }
    for text, message in bad.items():
        with pytest.raises(PlanError, match=message):
            Plan.from_json(text)
    # float positions stay floats when the file says so
    floats = good.replace('"positions": [2]', '"positions": [2.5], "positions_dtype": "float32"')
    assert Plan.from_json(floats)["b"].positions.dtype == torch.float32
