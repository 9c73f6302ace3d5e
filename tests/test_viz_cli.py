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


def arrow_plan() -> Plan:
    """Uni-Encoder's arrow mask by hand (structlm.layouts): a bidirectional context that sees every candidate,
    candidates at one shared start that see the context and themselves, never each other."""
    from structlm.layouts import Part, shared_start

    plan = Plan()
    plan.add(Segment("context", input_ids=[1, 5, 6, 2], causal=False, role="context"))
    shared_start(plan, [Part(f"cand{i}", input_ids=ids, causal=False, role="candidate")
                        for i, ids in enumerate(([7, 8], [9, 10, 11], [12]))], start=4, sees=["context"])
    plan.see("context", ["cand0", "cand1", "cand2"])
    return plan


def test_arrow_mask_through_the_generic_plan_picture(tmp_path):
    from structlm.testing import brute_force_mask

    plan = arrow_plan()
    path = tmp_path / "arrow.png"
    fig = show_plan(plan, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    segment_panel, token_panel, positions_panel = fig.axes[:3]
    codes = segment_panel.images[0].get_array()
    assert codes.tolist() == [[3, 1, 1, 1], [1, 3, 0, 0], [1, 0, 3, 0], [1, 0, 0, 3]]  # the arrow
    assert (token_panel.images[0].get_array() == brute_force_mask(plan).numpy()).all()
    ys = [line.get_ydata().tolist() for line in positions_panel.get_lines()]
    assert ys == [[0, 1, 2, 3], [4, 5], [4, 5, 6], [4]]  # candidates share positions after the context


def test_show_graph_colours_nodes_by_hops_to_the_nearest_anchor(tmp_path):
    import networkx as nx
    import numpy as np

    from structlm.graph import anchor_distances, select_anchors
    from structlm.viz import nearest_distances, show_graph

    graph = nx.karate_club_graph()
    anchors = select_anchors(graph, radius=1, coverage=1.0).tolist()
    distances = anchor_distances(graph, anchors)
    oracle = nx.multi_source_dijkstra_path_length(graph, set(anchors), weight=lambda *edge: 1)  # hops
    assert nearest_distances(distances).tolist() == [oracle[v] for v in graph.nodes()]
    assert nearest_distances(np.array([[-1, -1], [3, -1]])).tolist() == [-1, 3]
    fig = show_graph(graph, anchors, distances, str(tmp_path / "graph.png"), radius=1)
    assert (tmp_path / "graph.png").stat().st_size > 10_000 and "4 anchors" in fig.axes[0].get_title()
    big = nx.barabasi_albert_graph(600, 2, seed=0)  # past max_draw: a histogram instead of a drawing
    far = anchor_distances(big, [0])
    fig = show_graph(big, [0], far, max_draw=400)
    assert sum(bar.get_height() for bar in fig.axes[0].patches) == 600
