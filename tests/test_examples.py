"""Every example runs to the end in its quick mode, offline, as a user would start it (a fresh interpreter)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# script -> (extra arguments, a line its output must hold). Add an example: one entry here.
EXAMPLES = {
    "graph_masks.py": (["--out", "{tmp}"], "next token after the Graph-KV prompt"),
    "rag_parallel.py": ([], "cache hits 5, misses 0"),
    "probe_code.py": (["--out", "{tmp}"], "| MiniLM-L6 | 3 |"),
    "streaming.py": ([], "wait-3 trace"),
    "rank_candidates.py": ([], "same scores as K separate passes: True"),
}
# probe_code: tens of seconds (hidden states of a real model over 120 functions); streaming: its quick mode already
# runs in the default run, in-process, in tests/test_stream_cli.py
SLOW = {"probe_code.py", "streaming.py"}


def test_every_example_is_listed():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(EXAMPLES)


@pytest.mark.parametrize("script", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
                                    for name in EXAMPLES])
def test_example_runs_in_quick_mode(script, tmp_path):
    extra, expected = EXAMPLES[script]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_WAIT_POLICY="PASSIVE", MPLBACKEND="Agg")
    command = [sys.executable, str(ROOT / "examples" / script), "--quick"] + [a.format(tmp=tmp_path) for a in extra]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout, result.stdout[-2000:]
    assert "Traceback" not in result.stderr
    if "--out" in extra:
        assert list(tmp_path.glob("*.png")), "the example wrote no picture"
