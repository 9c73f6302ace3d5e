"""The `structlm` command as a user meets it: every plan kind equals the front-end called directly, and every user
mistake ends in one line and exit status 2 (never a traceback)."""
from __future__ import annotations

import json
import sys

import networkx as nx
import pytest

from structlm import Plan
from structlm.cli import COMMANDS, main


def run(argv, capsys) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit status, stdout, stderr); argparse's SystemExit counts as a status."""
    try:
        status = main(argv)
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs of every kind, written the way a user would have them."""
    folder = tmp_path_factory.mktemp("inputs")
    nx.write_edgelist(nx.karate_club_graph(), folder / "karate.edges", data=False)
    miserables = nx.les_miserables_graph()
    for node in miserables:
        miserables.nodes[node]["text"] = f"{node} is a character of Les Miserables ."
    nx.write_graphml(miserables, folder / "miserables.graphml")
    contexts = ["Lake Baikal is the deepest lake .", "The Amazon carries the most water .",
                "Kilimanjaro is the highest mountain in Africa ."]
    (folder / "docs.json").write_text(json.dumps({"question": "Which lake is the deepest ?", "contexts": contexts}))
    (folder / "docs.jsonl").write_text("\n".join([json.dumps({"text": c}) for c in contexts]
                                                 + [json.dumps({"question": "Which lake is the deepest ?"})]))
    (folder / "docs.txt").write_text("\n\n".join(contexts) + "\n")
    (folder / "module.py").write_text("def f(x):\n    return x + 1\n\n\nclass A:\n    def g(self, y):\n"
                                      "        return f(y) * 2\n")
    # malformed inputs
    (folder / "one_column.edges").write_text("1 2\n3\n")
    (folder / "broken.graphml").write_text("<graphml><graph><node id='a'>")
    (folder / "broken.json").write_text('{"contexts": ["a", ')
    (folder / "not_a_plan.json").write_text('{"format": "nope"}')
    (folder / "no_contexts.jsonl").write_text('{"title": "x"}\n')
    (folder / "notes.xyz").write_text("hello")
    (folder / "source.txt").write_text("the cat sat on the mat today\n")
    (folder / "target.txt").write_text("le chat est assis\n")
    (folder / "blank.txt").write_text("  \n\n")
    (folder / "add.py").write_text("def add(a, b):\n    return a + b\n")
    (folder / "cands.txt").write_text("Return the sum of two numbers.\nRead a file into a string.\n\n"
                                      "Sort a list in place.\n")
    (folder / "cands.json").write_text(json.dumps({"candidates": ["Return the sum of two numbers.",
                                                                  {"text": "Read a file into a string."}]}))
    (folder / "dup_cands.txt").write_text("Sort a list.\nRead a file.\nSort a list.\n")
    return folder


# ------------------------------------------------------------------------------------------------- plan kinds
def test_plan_graph_node_tokens(files, tmp_path, capsys):
    out = tmp_path / "plan.json"
    status, printed, _ = run(["plan", "graph", str(files / "karate.edges"), "--nodes", "0", "33", "--fit-steps", "0",
                              "-o", str(out)], capsys)
    assert status == 0 and "anchors (radius 1)" in printed and f"wrote {out}" in printed
    plan = Plan.from_json(out.read_text())
    assert [s.name for s in plan if s.role == "node"] == ["node:0", "node:33"]
    assert all(plan[name].is_soft and plan[name].embeds.shape == (1, 32) for name in ("node:0", "node:33"))
    assert plan.position_ids.tolist() == [list(range(len(plan)))]  # NT-LLM changes neither positions nor mask


def test_plan_graph_ego_equals_the_front_end(files, tmp_path, capsys):
    from structlm.graph.plans import ego_graph_plan
    from structlm.text import demo_tokenizer

    out = tmp_path / "ego.json"
    status, printed, _ = run(["plan", "graph", str(files / "miserables.graphml"), "--mode", "ego", "--center",
                              "Fantine", "--hops", "2", "-o", str(out)], capsys)
    assert status == 0 and "chunk start positions" in printed
    graph = nx.read_graphml(files / "miserables.graphml")
    texts = {node: graph.nodes[node]["text"] for node in graph}
    prefix, query = "Answer from the graph .", "How are these nodes related ?"
    tokenizer = demo_tokenizer(list(texts.values()) + [prefix, query])
    expected = ego_graph_plan(tokenizer, graph, texts, "Fantine", query, hops=2, prefix=prefix, max_nodes=200)
    assert Plan.from_json(out.read_text()) == expected


@pytest.mark.parametrize("name", ["docs.json", "docs.jsonl", "docs.txt"])
def test_plan_rag_reads_every_format(files, tmp_path, capsys, name):
    from structlm import rag
    from structlm.text import demo_tokenizer

    out = tmp_path / "rag.json"
    extra = ["--question", "Which lake is the deepest ?"] if name.endswith(".txt") else []
    status, printed, _ = run(["plan", "rag", str(files / name), "-o", str(out)] + extra, capsys)
    assert status == 0 and "3 contexts, parallel" in printed
    contexts = ["Lake Baikal is the deepest lake .", "The Amazon carries the most water .",
                "Kilimanjaro is the highest mountain in Africa ."]
    prefix, question = "Answer the question using the documents .", "Which lake is the deepest ?"
    expected = rag.parallel(demo_tokenizer(contexts + [question, prefix]), contexts, question, prefix=prefix)
    assert Plan.from_json(out.read_text()) == expected


def test_plan_rag_graph_kv_layout(files, capsys):
    status, printed, _ = run(["plan", "rag", str(files / "docs.json"), "--layout", "graph-kv-full"], capsys)
    assert status == 0 and "chunk0.target" in printed


def test_plan_code_equals_the_front_end(files, tmp_path, capsys):
    from structlm.code import add_unixcoder_tokens, unixcoder_plan
    from structlm.probe import load_packaged_minilm

    out = tmp_path / "code.json"
    status, printed, _ = run(["plan", "code", str(files / "module.py"), "--function", "g", "--mode",
                              "encoder-decoder", "--target", "doubles f", "-o", str(out)], capsys)
    assert status == 0 and "function g: 2 lines" in printed
    tokenizer, _ = load_packaged_minilm(with_model=False)
    add_unixcoder_tokens(tokenizer)
    source = "def g(self, y):\n    return f(y) * 2\n"
    expected = unixcoder_plan(tokenizer, source, mode="encoder-decoder", target="doubles f")
    plan = Plan.from_json(out.read_text())
    assert plan == expected and plan["source"].causal is False and plan.sees("target") == ["source"]


def test_plan_code_ast_mode(files, capsys):
    status, printed, _ = run(["plan", "code", str(files / "module.py"), "--ast", "paper", "--mode", "decoder-only"],
                             capsys)
    assert status == 0 and "Plan(" in printed and "1 segments" in printed


# ------------------------------------------------------------------------------------------------- show, bench
def test_plan_stream_equals_the_front_end(files, tmp_path, capsys):
    from structlm import stream
    from structlm.text import demo_tokenizer

    out = tmp_path / "stream.json"
    status, printed, _ = run(["plan", "stream", str(files / "source.txt"), str(files / "target.txt"), "--k", "2",
                              "--phi", "16", "--prompt", "Translate :", "-o", str(out)], capsys)
    assert status == 0 and "7 source words, 4 target words, wait-2, phi=16" in printed
    source, target = stream.split_words("the cat sat on the mat today"), stream.split_words("le chat est assis")
    tokenizer = demo_tokenizer(source + target + ["Translate :"])
    expected = stream.plan(source, target, policy=stream.WaitK(2), phi=16, prompt="Translate :", tokenizer=tokenizer)
    plan = Plan.from_json(out.read_text())
    assert plan == expected
    assert min(s.start for s in plan if s.role == "target") == 16   # the target's own position range


@pytest.mark.parametrize("name", ["cands.txt", "cands.json"])
def test_plan_candidates_equals_the_front_end(files, tmp_path, capsys, name):
    from structlm.candidates import uni_encoder
    from structlm.probe import load_packaged_minilm

    out = tmp_path / "cand.json"
    status, printed, _ = run(["plan", "candidates", str(files / "add.py"), str(files / name), "--layout", "no-peek",
                              "-o", str(out)], capsys)
    assert status == 0 and "no-peek mask, encoder form" in printed and "token types 0 (context)" in printed
    texts = ["Return the sum of two numbers.", "Read a file into a string.", "Sort a list in place."]
    tokenizer, _ = load_packaged_minilm(with_model=False)
    expected = uni_encoder(tokenizer, "def add(a, b):\n    return a + b", texts[:3 if name.endswith("txt") else 2],
                           mask="no-peek")
    assert Plan.from_json(out.read_text()) == expected


def test_plan_candidates_decoder_form_with_a_word_tokenizer(files, capsys):
    status, printed, _ = run(["plan", "candidates", str(files / "add.py"), str(files / "cands.txt"), "--tokenizer",
                              "words"], capsys)
    assert status == 0 and "arrow mask, decoder form" in printed and "token types" not in printed


def test_rank_prints_the_ranking(files, capsys):
    status, printed, _ = run(["rank", str(files / "add.py"), str(files / "cands.txt")], capsys)
    lines = printed.splitlines()
    assert status == 0 and "3 candidates ranked in one pass (arrow mask, encoder: cosine" in lines[0]
    assert lines[1].endswith("Return the sum of two numbers.") and len(lines) == 4
    status, printed, _ = run(["rank", str(files / "add.py"), str(files / "cands.json"), "--tiny", "--top", "1"],
                             capsys)
    assert status == 0 and "decoder: log-likelihood" in printed and len(printed.splitlines()) == 2


def test_show_draws_a_saved_plan(files, tmp_path, capsys):
    saved, picture = tmp_path / "plan.json", tmp_path / "mask.png"
    assert run(["plan", "rag", str(files / "docs.json"), "-o", str(saved)], capsys)[0] == 0
    status, printed, _ = run(["show", str(saved), "-o", str(picture)], capsys)
    assert status == 0 and f"wrote {picture}" in printed
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_lists_runs_and_passes_quick(tmp_path, capsys):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "tiny.py").write_text(
        '"""A tiny benchmark."""\nimport argparse\n'
        'p = argparse.ArgumentParser(); p.add_argument("--quick", action="store_true")\n'
        'if __name__ == "__main__":\n    a = p.parse_args()\n'
        '    print("| case | figure |"); print(f"| quick={a.quick} | 1.0x |")\n')
    (folder / "plain.py").write_text('"""No quick mode."""\nif __name__ == "__main__":\n    print("| plain | 2x |")\n')
    (folder / "helper.py").write_text("def helper():\n    return 1\n")  # no main: not a benchmark
    status, printed, _ = run(["bench", "--dir", str(folder)], capsys)
    assert status == 0 and "tiny" in printed and "A tiny benchmark." in printed and "helper" not in printed
    status, printed, _ = run(["bench", "tiny", "plain", "--quick", "--dir", str(folder)], capsys)
    assert status == 0  # the scripts' own output goes straight to the terminal (not captured by capsys)
    assert "== tiny: python benchmarks/tiny.py --quick" in printed and "(no --quick mode: full run)" in printed


def test_bench_runs_a_script_and_prints_its_table(tmp_path, capfd):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "tiny.py").write_text('if __name__ == "__main__":\n    print("| tiny | 3.0x |")\n')
    assert main(["bench", "tiny", "--dir", str(folder)]) == 0
    assert "| tiny | 3.0x |" in capfd.readouterr().out


def test_bench_finds_the_checkout_benchmarks(capsys):
    status, printed, _ = run(["bench", "--list"], capsys)
    assert status == 0 and "  plan_compile " in printed and "  measure " not in printed


# ------------------------------------------------------------------------------------------------- mistakes
MISTAKES = {
    "plan": [["plan", "nope", "x"], ["plan", "graph", "{missing}"], ["plan", "graph", "{one_column.edges}"],
             ["plan", "graph", "{broken.graphml}"], ["plan", "graph", "{karate.edges}", "--mode", "ego"],
             ["plan", "graph", "{karate.edges}", "--mode", "ego", "--center", "99"],
             ["plan", "rag", "{broken.json}"], ["plan", "rag", "{docs.txt}"], ["plan", "rag", "{no_contexts.jsonl}"],
             ["plan", "code", "{notes.xyz}"], ["plan", "code", "{module.py}", "--function", "nope"],
             ["plan", "code", "{missing}"], ["plan", "--json", "{not_a_plan.json}"], ["plan", "--json", "{missing}"],
             ["plan", "graph"], ["plan", "stream", "{source.txt}", "{missing}"],
             ["plan", "stream", "{blank.txt}", "{target.txt}"], ["plan", "stream", "{source.txt}", "{target.txt}",
                                                                  "--k", "0"],
             ["plan", "candidates", "{add.py}", "{missing}"], ["plan", "candidates", "{missing}", "{cands.txt}"],
             ["plan", "candidates", "{add.py}", "{broken.json}"], ["plan", "candidates", "{add.py}", "{blank.txt}"],
             ["plan", "candidates", "{add.py}", "{dup_cands.txt}"],
             ["plan", "candidates", "{add.py}", "{cands.txt}", "--layout", "square", "--form", "decoder"]],
    "show": [["show", "{missing}"], ["show", "{not_a_plan.json}"], ["show", "{broken.json}"], ["show"]],
    "bench": [["bench", "no_such_benchmark"], ["bench", "--dir", "{missing}"]],
    "rag": [["rag", "--contexts", "{missing}"], ["rag", "--contexts", "{broken.json}"],
            ["rag", "--layout", "nope"]],
    "graph": [["graph", "--edges", "{missing}"], ["graph", "--edges", "{one_column.edges}"],
              ["graph", "--edges", "{broken.graphml}"], ["graph", "--builtin", "nope"]],
    "probe": [["probe"], ["probe", "--source", "{missing}", "--no-baselines"]],
    "stream": [["stream", "{missing}", "--tiny"], ["stream"]],
    "rank": [["rank", "{missing}", "{cands.txt}"], ["rank", "{add.py}", "{missing}"], ["rank", "{add.py}",
             "{broken.json}"], ["rank", "{add.py}", "{blank.txt}"], ["rank", "{add.py}", "{dup_cands.txt}", "--tiny"],
             ["rank", "{blank.txt}", "{cands.txt}"], ["rank", "{add.py}", "{cands.txt}", "--head", "{missing}"],
             ["rank", "{add.py}", "{cands.txt}", "--layout", "nope"], ["rank"]],
}
CASES = [(name, argv) for name, cases in MISTAKES.items() for argv in cases]


def test_every_command_has_mistake_cases():
    missing = [name for name in COMMANDS if name not in MISTAKES and name != "demo"]  # demo reads no input
    assert not missing, f"add user-mistake cases for {missing}"


@pytest.mark.parametrize("command,argv", CASES, ids=[" ".join(argv) for _, argv in CASES])
def test_a_user_mistake_is_one_line_and_exit_2(files, capsys, command, argv):
    argv = [str(files / ("missing.file" if arg == "{missing}" else arg[1:-1])) if arg.startswith("{") else arg
            for arg in argv]
    status, _, err = run(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Loading weights")]
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"structlm {command}"), err
    assert "Traceback" not in err


def test_the_installed_entry_point_reports_one_line(files):
    import subprocess

    result = subprocess.run([sys.executable, "-m", "structlm.cli", "plan", "graph", str(files / "one_column.edges")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "one_column.edges:2: an edge needs two node ids" in result.stderr


def test_every_plan_kind_has_help(capsys):
    from structlm.cli.plan_kinds import all_kinds

    for name in all_kinds():
        status, printed, _ = run(["plan", name, "--help"], capsys)
        assert status == 0 and printed.startswith(f"usage: structlm plan {name}") and "--tokenizer" in printed


def test_plan_options_before_or_after_the_kind(files, capsys):
    for argv in (["plan", "--mask", "rag", str(files / "docs.json")], ["plan", "rag", str(files / "docs.json"), "--mask"]):
        status, printed, _ = run(argv, capsys)
        assert status == 0 and "#" in printed.splitlines()[-1]  # the text mask is the last thing printed
