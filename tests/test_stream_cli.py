"""``structlm stream`` and examples/streaming.py run offline (tiny model) and fail with one line on bad input."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

from structlm.cli import main

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Assert statements are a convenient way to insert debugging assertions into a program"


def test_stream_command_prints_each_write_and_the_latency(tmp_path, capsys):
    source = tmp_path / "source.txt"
    source.write_text(TEXT)
    picture = tmp_path / "trace.png"
    assert main(["stream", str(source), "--tiny", "--k", "2", "--max-extra-writes", "2", "--trace", str(picture)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "under wait-2" in lines[0] and "random tiny model" in lines[0]
    assert lines[1].split()[:5] == ["2", "read", "+", "Assert", "statements"]
    latency = [line for line in lines if line.startswith("AL ")][0].split()
    writes = [line for line in lines if " wrote " in line]
    assert latency[0] == "AL" and latency[2] == "LAAL" and float(latency[1]) >= 2.0
    assert f"{len(writes)} writes, 13 source words" in lines[-2]
    assert picture.stat().st_size > 1000


def test_stream_command_bad_input_exits_2(tmp_path, capsys):
    assert main(["stream", str(tmp_path / "missing.txt"), "--tiny"]) == 2
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert main(["stream", str(empty), "--tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("structlm stream: error:") for line in err)


def test_streaming_example_quick(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["streaming.py", "--quick", "--words", "12"])
    runpy.run_path(str(ROOT / "examples" / "streaming.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "wait-3 trace" in out and "offline:" in out
    difference = float(out.split("max |logit difference| ")[1].split()[0])
    assert difference < 1e-4
