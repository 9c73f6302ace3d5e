"""``structlm probe``: AST-Probe F1 per layer of a model."""
from __future__ import annotations

import argparse


def _run_probe(args: argparse.Namespace) -> int:
    from structlm.probe import probe_source

    table = probe_source(
        args.source,
        model=args.model,
        language=args.language,
        layers=args.layers,
        out=args.out,
        snippets=args.snippets,
        baselines=not args.no_baselines,
        seed=args.seed,
        rank=args.rank,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_length=args.max_length,
        progress=not args.quiet,
    )
    print(table.to_markdown())
    meta = table.meta
    print(f"train/valid/test snippets: {meta.get('train')}/{meta.get('valid')}/{meta.get('test')}; skipped: {meta.get('skipped')}")
    if args.out:
        print(f"wrote {args.out}/probe.md, probe.json, probe.png")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="AST-Probe: how much of the syntax tree each layer of a model holds (F1 per layer)",
        description="Collect functions from the source files under --source, turn each into AST-Probe's "
        "(d, c, u) tuple, and train one probe per layer on the frozen hidden states of --model; report "
        "constituent precision/recall/F1 per layer next to the random-weights baseline (layer 0 is the "
        "embedding baseline). Set OMP_WAIT_POLICY=PASSIVE on shared CPUs.",
    )
    parser.add_argument("--model", default=None, help="HF model name, local folder, or an embedded model: all-minilm-l6-v2 (default), smollm2-135m-instruct")
    parser.add_argument("--language", default="python", help="language of the source files (default: python)")
    parser.add_argument("--source", required=True, metavar="DIR", help="directory (or file) of source code")
    parser.add_argument("--layers", type=int, nargs="+", help="layers to probe (default: all, 0 = embeddings)")
    parser.add_argument("--out", metavar="DIR", help="write probe.md, probe.json and probe.png here")
    parser.add_argument("--snippets", type=int, default=600, help="functions to use (split 70/10/20)")
    parser.add_argument("--rank", type=int, default=128, help="dimension of the syntactic subspace")
    parser.add_argument("--epochs", type=int, default=20, help="maximum epochs (early stopping, patience 5)")
    parser.add_argument("--batch-size", type=int, default=32, help="probe batch size (paper: 32)")
    parser.add_argument("--max-length", type=int, default=256, help="maximum sub-words per snippet")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-baselines", action="store_true", help="skip the random-weights baseline")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run_probe)
