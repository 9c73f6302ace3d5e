"""Probe a model layer by layer, with the paper's baselines: hidden states once, one probe per layer.

``probe_layers`` runs one model; ``probe_with_baselines`` adds the embedding layer and a random-weights copy;
``probe_source`` collects functions from source files first (what the ``structlm probe`` command runs).
"""
from __future__ import annotations

import random
from pathlib import Path
import os
from typing import Sequence

from torch import nn
from tqdm.auto import tqdm

from structlm.probe.data import (ProbeExample, collect_functions, layer_features, load_model, load_packaged_minilm,
                                 make_examples, random_weights_copy)
from structlm.hf.embedded import TITLES, is_embedded
from structlm.probe.table import ProbeRow, ProbeTable
from structlm.probe.train import evaluate_probe, label_sets, train_probe

__all__ = ["probe_layers", "probe_with_baselines", "probe_source"]


def _split(n: int, fractions: tuple[float, float, float], seed: int) -> tuple[list[int], list[int], list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_train = int(round(n * fractions[0]))
    n_valid = int(round(n * fractions[1]))
    return order[:n_train], order[n_train : n_train + n_valid], order[n_train + n_valid :]


def probe_layers(
    model: nn.Module | None,
    snippets: Sequence[str] | Sequence[ProbeExample],
    layers: Sequence[int] | None = None,
    *,
    tokenizer=None,
    language: str = "python",
    name: str = "model",
    rank: int = 128,
    split: tuple[float, float, float] = (0.7, 0.1, 0.2),
    max_length: int = 256,
    epochs: int = 20,
    patience: int = 5,
    batch_size: int = 32,
    seed: int = 42,
    progress: bool = True,
    features: str | os.PathLike | None = None,
) -> ProbeTable:
    """Train and test one probe per layer on frozen hidden states; returns a :class:`ProbeTable`.

    ``snippets`` are source strings (needs ``tokenizer``) or prepared :class:`ProbeExample` objects. They
    are split train / valid / test by ``split`` with ``seed``; the label vocabularies come from all snippets,
    as in the paper. ``layers`` defaults to every layer including 0 (embeddings).

    ``features``: a folder written by :func:`structlm.scale.layer_features` (hidden states computed across Ray
    workers); the probes train from it and the model is not run (``model`` may then be None).
    """
    if snippets and isinstance(snippets[0], ProbeExample):
        examples, skipped = list(snippets), {}
    else:
        if tokenizer is None:
            raise ValueError("pass tokenizer= to probe raw snippets (or give ProbeExample objects)")
        examples, skipped = make_examples(list(snippets), tokenizer, language, max_length=max_length)
    if len(examples) < 3:
        raise ValueError(f"only {len(examples)} usable snippets (skipped: {skipped}); need at least 3")
    if features is not None:
        from structlm.probe.features import load_features

        feats = load_features(features, layers, examples)
        layers = list(feats)
    elif model is None:
        raise ValueError("pass a model, or features= a folder of precomputed hidden states")
    if layers is None:
        layers = list(range(model.config.num_hidden_layers + 1))
    train, valid, test = _split(len(examples), split, seed)
    if not train or not valid or not test:
        raise ValueError(f"split {split} of {len(examples)} snippets leaves an empty part")
    tuples = [ex.tuple for ex in examples]
    c_labels, u_labels = label_sets(tuples)
    if features is None:
        feats = layer_features(model, examples, layers, progress=progress, desc=f"{name}: hidden states")
    table = ProbeTable(meta={"train": len(train), "valid": len(valid), "test": len(test), "skipped": skipped, "rank": rank})
    for layer in tqdm(layers, desc=f"{name}: layers", disable=not progress, unit="layer"):
        f = feats[layer]
        probe, history = train_probe(
            [f[i] for i in train], [tuples[i] for i in train],
            [f[i] for i in valid], [tuples[i] for i in valid],
            c_labels=c_labels, u_labels=u_labels, rank=rank, epochs=epochs, patience=patience,
            batch_size=batch_size, seed=seed, progress=progress, desc=f"{name} layer {layer}",
        )
        scores = evaluate_probe(probe, [f[i] for i in test], [tuples[i] for i in test])
        table.rows.append(
            ProbeRow(name, layer, scores["precision"], scores["recall"], scores["f1"], int(scores["snippets"]), len(history))
        )
    return table


def probe_with_baselines(
    model: nn.Module,
    tokenizer,
    snippets: Sequence[str],
    layers: Sequence[int] | None = None,
    *,
    name: str = "model",
    language: str = "python",
    seed: int = 42,
    examples: Sequence[ProbeExample] | None = None,
    max_length: int = 256,
    **kwargs,
) -> ProbeTable:
    """The paper's comparison on one split: every layer of the model (layer 0 = the embedding baseline)
    next to the same architecture with random weights (trained embeddings kept, so its layer 0 is the
    model's and is not repeated)."""
    skipped: dict = {}
    if examples is None:
        examples, skipped = make_examples(list(snippets), tokenizer, language, max_length=max_length)
    if layers is None:
        layers = list(range(model.config.num_hidden_layers + 1))
    table = probe_layers(model, list(examples), layers, name=name, seed=seed, **kwargs)
    random_model = random_weights_copy(model, seed=seed)
    deep = [layer for layer in layers if layer > 0]
    if deep:
        rand = probe_layers(random_model, list(examples), deep, name=f"{name} random weights", seed=seed, **kwargs)
        table.rows += rand.rows
    if skipped:
        table.meta["skipped"] = skipped
    return table


def probe_source(
    source: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    language: str = "python",
    layers: Sequence[int] | None = None,
    out: str | os.PathLike | None = None,
    snippets: int = 600,
    baselines: bool = True,
    seed: int = 42,
    progress: bool = True,
    **train_kwargs,
) -> ProbeTable:
    """Everything ``structlm probe`` does: collect functions under ``source``, sample ``snippets`` of them
    (seeded), probe every layer of ``model`` (default: the packaged MiniLM) and, with ``baselines``, the
    random-weights copy; write ``probe.md``, ``probe.json`` and ``probe.png`` into ``out`` when given."""
    if model is None:
        tokenizer, hf_model = load_packaged_minilm()
        name = "MiniLM-L6"
    else:
        tokenizer, hf_model = load_model(model)
        name = Path(str(model)).name or str(model)
        if is_embedded(model) and not os.path.exists(model):
            name = TITLES[str(model).lower()]
    pool = collect_functions(source, language, limit=max(snippets * 4, snippets), seed=seed, progress=progress)
    random.Random(seed).shuffle(pool)
    max_length = min(train_kwargs.pop("max_length", 256), getattr(hf_model.config, "max_position_embeddings", 512))
    examples, skipped = make_examples(pool, tokenizer, language, max_length=max_length)
    examples = examples[:snippets]
    if baselines:
        table = probe_with_baselines(hf_model, tokenizer, [], layers, name=name, language=language, seed=seed,
                                     examples=examples, progress=progress, **train_kwargs)
    else:
        table = probe_layers(hf_model, examples, layers, name=name, seed=seed, progress=progress, **train_kwargs)
    table.meta.update({"source": str(source), "language": language, "snippets": len(examples), "skipped": skipped,
                       "collected": len(pool)})
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "probe.md").write_text(table.to_markdown() + "\n", encoding="utf-8")
        (out / "probe.json").write_text(table.to_json(), encoding="utf-8")
        table.plot(out / "probe.png", title=f"AST-Probe on {name} ({language})")
    return table
