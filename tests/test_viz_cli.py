"""Pictures of plans and the `structlm` command."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from structlm import Plan, Segment
from structlm.cli import build_parser, main
from structlm.viz import segment_matrix, show_plan


def test_show_plan_writes_png_for_small_and_large_plans(tmp_path):
    small = Plan([Segment("a", input_ids=[1, 2]), Segment("b", input_ids=[3], start=2, causal=False)], [("b", "a")])
    path = tmp_path / "small.png"
    show_plan(small, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    large = Plan([Segment(f"s{i}", input_ids=torch.ones(40, dtype=torch.long)) for i in range(30)])
    large.add_edge("s1", "s0")
    fig = large.show(str(tmp_path / "large.png"), max_tokens=100)
    assert "segment visibility" in fig.axes[0].get_title()
    codes = segment_matrix(large)
    assert codes[1, 0] == 1 and codes[0, 0] == 2 and codes[0, 1] == 0


def test_plan_command_prints_saves_and_loads(tmp_path, capsys):
    saved = tmp_path / "plan.json"
    assert main(["plan", "--mask", "--save", str(saved)]) == 0
    printed = capsys.readouterr().out
    assert "Plan(16 tokens, 5 segments" in printed and "sees: prefix" in printed and "#" in printed
    assert main(["plan", "--json", str(saved)]) == 0
    assert "Plan(16 tokens" in capsys.readouterr().out


def test_plan_command_rejects_a_bad_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "nope"}')
    result = subprocess.run([sys.executable, "-m", "structlm.cli", "plan", "--json", str(bad)], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "not a structlm plan" in result.stderr and "Traceback" not in result.stderr


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert "plan" in commands
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: structlm " + name in capsys.readouterr().out


def test_demo_tour_runs_and_reports_its_checks(tmp_path):
    from structlm.demo import run_demo

    lines: list[str] = []
    run_demo(out=str(tmp_path), say=lines.append)
    text = "\n".join(lines)
    assert (tmp_path / "plan.png").exists()
    assert "4 segments from the cache, 1 encoded" in text
    assert "equal to networkx shortest paths: True" in text
    assert "gives the tree back: True" in text and "F1 = 1.00" in text
    diffs = [float(line.rsplit(": ", 1)[1]) for line in lines if "max |logit difference|" in line or "T = S = 1" in line]
    assert len(diffs) == 2 and max(diffs) < 1e-4
