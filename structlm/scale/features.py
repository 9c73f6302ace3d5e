"""Probing features at corpus scale: hidden states computed on Ray Data workers, saved as safetensors shards that
``structlm.probe.probe_layers(..., features=folder)`` trains from without running the model again.

The format (and ``load_features``) is the probe's own, :mod:`structlm.probe.features`. Why shards and a
manifest: each worker writes whole shard files (atomically) as it goes; the manifest
(``features.json``) is written last, by the driver, once every example has its vectors — a folder without one is
an unfinished run and is refused. The manifest holds a digest of the examples (sub-word ids and alignment), so
features are never paired with other snippets or another tokenizer's split.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from structlm.files import write_atomically
from structlm.probe.features import FEATURES_MANIFEST, FORMAT, examples_digest
from structlm.scale.cluster import WorkerError, actor_cpus, ensure_ray, ordered

__all__ = ["layer_features", "FeatureWorker"]

class _Row:
    """What the probe's feature step reads of an example: ids, their word alignment, the number of words."""

    def __init__(self, input_ids, word_index, n_tokens: int) -> None:
        self.input_ids = [int(i) for i in input_ids]
        self.word_index = [int(i) for i in word_index]
        self.n_tokens = int(n_tokens)


class FeatureWorker:
    """A Ray Data actor: one model; each batch becomes one shard ``{index}/{layer}`` -> ``[words, hidden]``."""

    def __init__(self, model: str, layers: list[int], out_dir: str, threads: int = 1) -> None:
        from structlm.probe.data import load_model

        torch.set_num_threads(max(1, threads))
        self.layers, self.out_dir = layers, Path(out_dir)
        self.model, self.error = None, ""
        try:
            self.model = load_model(model)[1]
        except Exception as error:  # reported by the driver as one WorkerError
            self.error = f"{type(error).__name__}: {error}"

    def __call__(self, batch: dict) -> dict:
        from safetensors.torch import save_file

        from structlm.probe.data import layer_features as probe_features

        indexes = [int(i) for i in batch["index"]]
        if self.model is None:
            return {"index": indexes, "shard": [""] * len(indexes), "error": [self.error] * len(indexes)}
        rows = [_Row(ids, words, n)
                for ids, words, n in zip(batch["input_ids"], batch["word_index"], batch["n_tokens"])]
        feats = probe_features(self.model, rows, self.layers, batch_size=len(rows), progress=False)
        tensors = {f"{index}/{layer}": feats[layer][k].contiguous() for k, index in enumerate(indexes)
                   for layer in self.layers}
        name = f"shard-{uuid.uuid4().hex[:16]}.safetensors"
        temporary = self.out_dir / f".{name}.tmp"
        save_file(tensors, str(temporary), metadata={"format": FORMAT})
        os.replace(temporary, self.out_dir / name)
        return {"index": indexes, "shard": [name] * len(indexes), "error": [""] * len(indexes)}


def layer_features(
    snippets: Sequence[str] | Sequence[Any],
    model: str | os.PathLike,
    layers: Sequence[int] | None,
    out_dir: str | os.PathLike,
    *,
    language: str = "python",
    max_length: int = 256,
    num_workers: int = 2,
    batch_size: int = 16,
    progress: bool = True,
) -> dict:
    """Hidden states of every usable snippet at ``layers`` (default: all, 0 = embeddings) into ``out_dir``.

    ``snippets`` are source strings (prepared with ``probe.make_examples`` and the model's tokenizer, as
    ``probe_layers`` does) or ``ProbeExample`` objects. Returns the manifest: model, layers, count, shards,
    the examples' digest and what ``make_examples`` skipped. Then ``probe_layers(None, snippets, tokenizer=...,
    features=out_dir)`` trains on them.
    """
    from structlm.probe.data import ProbeExample, load_model, make_examples
    from structlm.scale.corpus import check_model

    check_model(model)
    out_dir = Path(out_dir)
    if (out_dir / FEATURES_MANIFEST).exists():
        raise FileExistsError(f"{out_dir} already holds features; give a new folder or delete it")
    snippets = list(snippets)
    if not snippets:
        raise ValueError("no snippets to compute features for")
    skipped: dict = {}
    if isinstance(snippets[0], ProbeExample):
        examples = snippets
    else:
        tokenizer = load_model(str(model), with_model=False)[0]
        examples, skipped = make_examples(snippets, tokenizer, language, max_length=max_length)
    if not examples:
        raise ValueError(f"no usable snippets (skipped: {skipped})")
    config = _config(model)
    count = getattr(config, "num_hidden_layers", None)
    layers = list(range(count + 1)) if layers is None else [int(x) for x in layers]
    for layer in layers:
        if layer < 0 or (count is not None and layer > count):
            raise ValueError(f"layer {layer} out of range: the model has layers 0..{count}")
    ray = ensure_ray(progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"index": i, "input_ids": np.asarray(ex.input_ids, np.int64),
             "word_index": np.asarray(ex.word_index, np.int64), "n_tokens": len(ex.tuple.tokens)}
            for i, ex in enumerate(examples)]
    cpus = actor_cpus(num_workers)
    data = ray.data.from_items(rows).map_batches(
        FeatureWorker, compute=ray.data.ActorPoolStrategy(size=num_workers), batch_size=batch_size, num_cpus=cpus,
        batch_format="numpy",
        fn_constructor_kwargs=dict(model=str(model), layers=layers, out_dir=str(out_dir.resolve()),
                                   threads=max(1, int(cpus))))
    with ordered():
        done = list(data.iter_rows())
    errors = {row["error"] for row in done if row["error"]}
    if errors:
        raise WorkerError(f"the workers could not load model {str(model)!r}: {sorted(errors)[0]}")
    shards = sorted({row["shard"] for row in done})
    if sorted(int(row["index"]) for row in done) != list(range(len(examples))):
        raise WorkerError(f"the workers returned {len(done)} of {len(examples)} examples' features")
    manifest = {"format": FORMAT, "model": str(model), "layers": layers, "count": len(examples), "shards": shards,
                "examples": examples_digest(examples), "skipped": skipped}
    write_atomically(out_dir / FEATURES_MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _config(model):
    """The model's config without its weights (an embedded name reads its local copy's)."""
    from transformers import AutoConfig

    from structlm.hf.embedded import MINILM, cached_copy, is_embedded, minilm_folder

    if is_embedded(str(model)) and not os.path.exists(model):
        model = minilm_folder() if str(model).lower() == MINILM else cached_copy()
    return AutoConfig.from_pretrained(str(model))
