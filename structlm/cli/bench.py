"""``structlm bench``: run the benchmark scripts (``benchmarks/<name>.py``) and print their tables.

Each script runs in its own process, as ``python benchmarks/<name>.py`` would (a fresh interpreter: a benchmark's
timings must not depend on what ran before it), with ``OMP_WAIT_POLICY=PASSIVE``; ``--quick`` is passed on to
the scripts that accept it and noted for the others. The scripts live in a checkout, not in the installed
package: the command looks in ``./benchmarks``, then beside the ``structlm`` package, or in ``--dir``.
"""
from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["find_benchmarks", "benchmark_folder", "supports_quick"]


def benchmark_folder(folder: str | None = None) -> Path:
    """The folder of benchmark scripts: ``folder``, else ``./benchmarks``, else the checkout's ``benchmarks``."""
    if folder:
        path = Path(folder)
        if not path.is_dir():
            raise FileNotFoundError(f"no such folder: {path}")
        return path
    import structlm

    candidates = [Path.cwd() / "benchmarks", Path(structlm.__file__).resolve().parents[1] / "benchmarks"]
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError("no benchmarks folder (looked in ./benchmarks and beside the structlm package): run "
                            "from a structlm checkout or pass --dir")


def find_benchmarks(folder: Path) -> dict[str, str]:
    """Script name -> the first line of its docstring (helper modules such as ``measure.py`` have no main)."""
    found = {}
    for path in sorted(folder.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name.startswith("_") or "__main__" not in text:
            continue
        try:
            doc = ast.get_docstring(ast.parse(text)) or ""
        except SyntaxError:
            doc = "(does not parse)"
        found[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
    return found


def supports_quick(script: Path) -> bool:
    """Whether the script declares a ``--quick`` option."""
    text = script.read_text(encoding="utf-8")
    return "'--quick'" in text or '"--quick"' in text


def _run_bench(args: argparse.Namespace) -> int:
    folder = benchmark_folder(args.dir)
    available = find_benchmarks(folder)
    if args.list or not (args.names or args.all):
        print(f"benchmarks in {folder}:")
        for name, line in available.items():
            print(f"  {name:<14} {line}")
        print("run one: structlm bench NAME [--quick]   (all: structlm bench --all)")
        return 0
    names = list(available) if args.all else args.names
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"no benchmark {', '.join(map(repr, unknown))} in {folder} "
                         f"(available: {', '.join(available)})")
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    failed = []
    for name in names:
        script = folder / f"{name}.py"
        command = [sys.executable, str(script)] + (args.args or [])
        quick = args.quick and supports_quick(script)
        if quick:
            command.insert(2, "--quick")
        note = "" if quick or not args.quick else " (no --quick mode: full run)"
        print(f"== {name}: {' '.join(['python', f'benchmarks/{name}.py'] + command[2:])}{note}", flush=True)
        result = subprocess.run(command, env=env, cwd=folder.parent)
        if result.returncode:
            failed.append(f"{name} (exit {result.returncode})")
    if failed:
        print(f"structlm bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run benchmark scripts (benchmarks/NAME.py) and print their tables; no NAME lists them",
        description="Run benchmarks/NAME.py scripts, each in a fresh process, and print their tables (figures and "
        "ratios to a baseline measured in the same run). Without NAME it lists the scripts.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (file names without .py)")
    parser.add_argument("--all", action="store_true", help="run every benchmark")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--quick", action="store_true", help="pass --quick to the scripts that support it")
    parser.add_argument("--dir", metavar="DIR", help="folder of benchmark scripts (default: ./benchmarks)")
    parser.add_argument("--args", nargs=argparse.REMAINDER, help="everything after --args goes to each script")
    parser.set_defaults(func=_run_bench)
