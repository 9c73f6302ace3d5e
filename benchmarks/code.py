"""Code front-end throughput over the standard library.

Baseline: bare tree-sitter parse + a cursor walk that visits every node (reads its type and byte range).
Measured: structlm's parse (byte-exact tree) + UniXcoder paper-style sequence + AST-Probe (d, c, u).
Prints MB/s for both and their ratio (goal: within 2x of the bare parse + walk). Both are timed in the same
run, interleaved file by file, with wall and process CPU time.

    python benchmarks/code.py                 # every stdlib .py file
    python benchmarks/code.py --limit 200     # the first 200 files (sorted)
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (structlm imports it)

import argparse
import json
import sysconfig
import time
import warnings
from pathlib import Path

from tqdm import tqdm


def bare_walk(parser, data: bytes) -> int:
    tree = parser.parse(data)
    cursor = tree.walk()
    count = 0
    while True:
        node = cursor.node
        _ = (node.type, node.start_byte, node.end_byte)
        count += 1
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return count


def main(argv=None) -> dict:
    from structlm.code import CodeSyntaxWarning, ast_tuple, language_spec, parse, unixcoder_sequence
    from structlm.code.parser import _ts_parser

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=sysconfig.get_paths()["stdlib"], help="directory of .py files")
    ap.add_argument("--limit", type=int, default=None, help="only the first N files (sorted)")
    ap.add_argument("--repeat", type=int, default=1, help="passes over the files (best pass is reported)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)

    files = sorted(p for p in Path(args.source).rglob("*.py") if "site-packages" not in p.parts)[: args.limit]
    blobs = [p.read_bytes() for p in files]
    total = sum(len(b) for b in blobs)
    parser = _ts_parser(language_spec("python").name)
    warnings.simplefilter("ignore", CodeSyntaxWarning)

    best = {"bare": (float("inf"), 0.0), "full": (float("inf"), 0.0)}
    nodes = tokens = 0
    for _ in range(args.repeat):
        spent = {"bare": [0.0, 0.0], "full": [0.0, 0.0]}
        nodes = tokens = 0
        for data in tqdm(blobs, desc="files", unit="file"):
            w, c = time.perf_counter(), time.process_time()
            nodes += bare_walk(parser, data)
            spent["bare"][0] += time.perf_counter() - w
            spent["bare"][1] += time.process_time() - c
            w, c = time.perf_counter(), time.process_time()
            tree = parse(data, "python")
            unixcoder_sequence(tree, "paper")
            if tree.root.text is None and any(not leaf.comment for leaf in tree.root.leaves()):
                tokens += len(ast_tuple(tree).tokens)  # empty files and files of only comments have no tuple
            spent["full"][0] += time.perf_counter() - w
            spent["full"][1] += time.process_time() - c
        for key in best:
            if spent[key][0] < best[key][0]:
                best[key] = (spent[key][0], spent[key][1])
    mb = total / 1e6
    result = {
        "files": len(files),
        "megabytes": round(mb, 3),
        "nodes": nodes,
        "ast_tokens": tokens,
        "bare_parse_walk": {"wall_s": round(best["bare"][0], 3), "cpu_s": round(best["bare"][1], 3), "MB_per_s": round(mb / best["bare"][0], 3)},
        "parse_unixcoder_dcu": {"wall_s": round(best["full"][0], 3), "cpu_s": round(best["full"][1], 3), "MB_per_s": round(mb / best["full"][0], 3)},
        "ratio_wall": round(best["full"][0] / best["bare"][0], 3),
        "ratio_cpu": round(best["full"][1] / max(best["bare"][1], 1e-9), 3),
    }
    print(f"{len(files)} files, {mb:.2f} MB, {nodes} nodes, {tokens} AST tokens")
    print(f"bare parse + walk           : {result['bare_parse_walk']['MB_per_s']:.2f} MB/s (cpu {best['bare'][1]:.2f} s)")
    print(f"parse + UniXcoder + (d,c,u) : {result['parse_unixcoder_dcu']['MB_per_s']:.2f} MB/s (cpu {best['full'][1]:.2f} s)")
    print(f"ratio (slower by)           : {result['ratio_wall']:.2f}x wall, {result['ratio_cpu']:.2f}x cpu (goal <= 2x)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
