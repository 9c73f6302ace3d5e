"""Probe a code model for syntax: how much of the AST can a linear probe read from each layer?

Walks through the pieces on one function (parse, UniXcoder sequence, AST-Probe tuple, sub-word alignment),
then runs AST-Probe on functions from the standard library with the packaged MiniLM-L6 and prints F1 per
layer next to the paper's baselines (layer 0 = embeddings; the same architecture with random weights).

    python examples/probe_code.py                       # about 5 minutes on 2 CPU cores
    python examples/probe_code.py --snippets 200 --epochs 5   # a quicker look
    python examples/probe_code.py --quick               # under a minute: 120 functions, layers 0 and 3, no baseline
    python examples/probe_code.py --model PATH          # any Hugging Face encoder or decoder (hub id or folder)
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: shared CPUs

import argparse
import sysconfig

from structlm.code import align_subwords, ast_tuple, parse, tree_from_tuple, unixcoder_sequence
from structlm.probe import load_packaged_minilm, probe_source

EXAMPLE = """\
def clamp(value, low=0, high=1):
    if value < low:
        return low
    return min(value, high)
"""


def walkthrough() -> None:
    tree = parse(EXAMPLE, "python", strict=True)
    print("UniXcoder, paper style  :", " ".join(unixcoder_sequence(tree, "paper"))[:200], "...")
    print("UniXcoder, release style:", " ".join(unixcoder_sequence(tree, "release"))[:200], "...")
    t = ast_tuple(tree)
    print("tokens:", t.tokens)
    print("d     :", t.d)
    print("c     :", t.c[:6], "...")
    print("u     :", [x for x in t.u if x != "<empty>"], "(non-empty unary labels)")
    rebuilt = tree_from_tuple(t.d, t.c, t.u, t.tokens)
    print("rebuilt:", rebuilt.sexp()[:160], "...")
    tokenizer, _ = load_packaged_minilm(with_model=False)
    ids, index = align_subwords(t.tokens, tokenizer)
    print(f"{len(t.tokens)} code tokens -> {len(ids)} MiniLM sub-words (incl. [CLS]/[SEP])")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=sysconfig.get_paths()["stdlib"])
    ap.add_argument("--snippets", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default="probe_out")
    ap.add_argument("--model", help="a Hugging Face model (hub id or folder); default: the packaged MiniLM-L6")
    ap.add_argument("--quick", action="store_true",
                    help="120 functions, layers 0 and 3, 6 epochs, no baseline: a smoke run, not the figure")
    args = ap.parse_args(argv)
    walkthrough()
    quick = dict(snippets=120, epochs=6, layers=[0, 3], baselines=False, rank=32) if args.quick else {}
    settings = dict(snippets=args.snippets, epochs=args.epochs) | quick
    table = probe_source(args.source, model=args.model, batch_size=args.batch_size, out=args.out,
                         progress=not args.quick, **settings)
    print(table.to_markdown())
    print(f"wrote {args.out}/probe.png")


if __name__ == "__main__":
    main()
