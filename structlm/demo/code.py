"""The demo's code step: UniXcoder's AST sequence and AST-Probe's (d, c, u) on a stdlib function, exactly;
in the real tour also a short AST-Probe run on the embedded MiniLM-L6 (a few dozen stdlib functions)."""
from __future__ import annotations

import inspect
import textwrap

from structlm.demo.tour import Tour

__all__ = ["code_step"]

PROBE_SNIPPETS = 120
PROBE_EPOCHS = 12
PROBE_LAYERS = [0, 3, 6]


def code_step(tour: Tour) -> None:
    import json.decoder

    from structlm.code import (ast_tuple, constituents, from_unixcoder_sequence, gold_constituents, parse,
                               precision_recall_f1, tree_from_tuple, unixcoder_sequence)

    source = textwrap.dedent(inspect.getsource(json.decoder.py_scanstring))
    tree = parse(source, "python", strict=True)
    paper = unixcoder_sequence(tree, "paper")
    release = unixcoder_sequence(tree, "release")
    back = from_unixcoder_sequence(paper)
    tour.say(f"json.decoder.py_scanstring: {len(paper)} UniXcoder tokens (paper style), {len(release)} (release "
             f"style); paper round trip gives the tree back: {back.signature() == tree.root.signature()}")
    t = ast_tuple(tree)
    rebuilt = tree_from_tuple(t.d, t.c, t.u, t.tokens)
    f1 = precision_recall_f1(gold_constituents(tree), constituents(rebuilt))[2]
    tour.say(f"AST-Probe tuple: {len(t.tokens)} tokens; first (token, d, c, u): "
             f"{list(zip(t.tokens[:3], t.d[:3], t.c[:3], t.u[:3]))}; (d, c, u) -> tree constituent F1 = {f1:.2f}")
    if not tour.quick:
        _probe(tour)


def _probe(tour: Tour) -> None:
    import sysconfig

    from structlm.probe import probe_source

    table = probe_source(sysconfig.get_paths()["stdlib"], snippets=PROBE_SNIPPETS, layers=PROBE_LAYERS,
                         epochs=PROBE_EPOCHS, patience=PROBE_EPOCHS, batch_size=4, progress=False)
    meta = table.meta
    tour.say(f"AST-Probe on MiniLM-L6, layers {PROBE_LAYERS} (0 = embeddings) and the random-weights copy: "
             f"{PROBE_SNIPPETS} stdlib functions, {meta.get('train')}/{meta.get('valid')}/{meta.get('test')} "
             f"train/valid/test, {PROBE_EPOCHS} epochs, batch 4 (a short run: docs/code.md has the full one)")
    tour.say(table.to_markdown())
    tour.picture("probe.png", table.plot)
