"""`structlm rag`: the offline demo runs and prints the layout for each layout choice."""
from __future__ import annotations

import pytest

from structlm.cli import main


@pytest.mark.parametrize("layout", ["parallel", "graph-kv-top1"])
def test_rag_command_offline(layout, capsys):
    assert main(["rag", "--layout", layout, "--max-new-tokens", "2", "--context", "the cat sat",
                 "--context", "a dog ran far", "--query", "who sat"]) == 0
    out = capsys.readouterr().out
    assert "sees: prefix" in out and "answer (" in out and "SegmentCache(" in out
    if layout == "parallel":
        assert "role='context'" in out and "APE(T=0.9, S=0.9, repo)" in out
    else:
        assert "role='source'" in out and "role='target'" in out
