"""The house rules, checked: data flows one way, no import circles (lazy imports count), small files."""
from __future__ import annotations

import ast
import importlib
import pkgutil
from collections import defaultdict
from pathlib import Path

import structlm

ROOT = Path(structlm.__file__).resolve().parent
CORE = {"structlm.errors", "structlm.plan", "structlm.segment", "structlm.masks", "structlm.schedule",
        "structlm.layouts", "structlm.text", "structlm.viz", "structlm.lazy", "structlm.files"}
FRONT_ENDS = ("structlm.rag", "structlm.graph", "structlm.code", "structlm.stream", "structlm.candidates")


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """Module -> structlm modules it imports anywhere (function bodies too), minus typing-only blocks."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    private = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("structlm"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in modules else node.module)
                    if alias.name.startswith("_"):
                        private.append((name, target))
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name.startswith("structlm"))
    return graph, private


def test_no_import_circles():
    graph, _ = _imports()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for child in graph.get(node, ()):
            if state.get(child) == 1:
                cycles.append(stack[stack.index(child):] + [child])
            elif not state.get(child):
                visit(child, stack)
        stack.pop()
        state[node] = 2

    for module in list(graph):
        if not state.get(module):
            visit(module, [])
    assert not cycles, cycles


def test_data_flows_one_way_and_no_private_imports():
    graph, private = _imports()
    assert not private, private
    for module, targets in graph.items():
        if module.startswith(FRONT_ENDS):
            assert not any(t.startswith("structlm.hf") for t in targets), (module, targets)
        if module in CORE:
            outside = {t for t in targets if t not in CORE}
            assert not outside, (module, outside)


def test_every_file_is_small():
    big = {str(p): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not big, big


def test_no_submodule_shadows_an_export():
    """``structlm.code.parse`` must stay the function even after ``import structlm.code.<module>``."""
    for package in ("structlm", "structlm.rag", "structlm.graph", "structlm.code", "structlm.stream", "structlm.probe",
                    "structlm.hf"):
        module = importlib.import_module(package)
        children = {info.name for info in pkgutil.iter_modules(module.__path__)}
        clash = children & set(getattr(module, "_EXPORTS", {}))
        assert not clash, (package, clash)


def test_parsers_is_package_data_not_a_package():
    """The language specs ship inside structlm (``structlm/code/languages``), never as a top-level package."""
    top = ROOT.parent
    assert not (top / "parsers" / "__init__.py").exists()
    assert "parsers" not in (top / "pyproject.toml").read_text().split("[tool.setuptools.packages.find]")[1].split("[")[0]
    specs = sorted(p.name for p in (ROOT / "code" / "languages").glob("*.json"))
    assert specs == sorted(p.name for p in (top / "parsers").glob("*.json")) and "python.json" in specs
