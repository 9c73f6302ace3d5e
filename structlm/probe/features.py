"""Precomputed probing features: the folder format ``probe_layers(features=...)`` trains from.

Shards of safetensors (``{example index}/{layer}`` -> ``[words, hidden]``) and a manifest, ``features.json``,
written last (so a folder without one is an unfinished run). :func:`structlm.scale.layer_features` writes such a
folder across Ray workers; this module only reads it, and checks it belongs to the examples being probed.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["FEATURES_MANIFEST", "FORMAT", "examples_digest", "load_features"]

FEATURES_MANIFEST = "features.json"
FORMAT = "structlm.probe_features"


def examples_digest(examples: Sequence[Any]) -> str:
    """A hash of the examples' sub-word ids and word alignment, in order (what the features depend on)."""
    hasher = hashlib.sha256()
    for ex in examples:
        hasher.update(np.asarray(ex.input_ids, dtype=np.int64).tobytes() + b"|")
        hasher.update(np.asarray(ex.word_index, dtype=np.int64).tobytes() + b"#")
    return hasher.hexdigest()[:32]


def load_features(directory: str | os.PathLike, layers: Sequence[int] | None = None,
                  examples: Sequence[Any] | None = None) -> dict[int, list[torch.Tensor]]:
    """Per layer, one ``[words, hidden]`` tensor per example (in example order), from a finished run.

    With ``examples`` the run must have been made from exactly these (same ids and alignment, same order).
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    path = directory / FEATURES_MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{directory} has no {FEATURES_MANIFEST}: not a finished layer_features run "
                                f"(compute them with structlm.scale.layer_features)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a structlm probe-features manifest")
    if examples is not None and examples_digest(examples) != manifest["examples"]:
        raise ValueError(f"the features in {directory} were computed for other snippets (or another tokenizer or "
                         f"max_length): compute them again for these examples")
    chosen = list(manifest["layers"]) if layers is None else [int(x) for x in layers]
    missing = sorted(set(chosen) - set(manifest["layers"]))
    if missing:
        raise ValueError(f"layers {missing} are not in {directory} (it has {manifest['layers']})")
    count = manifest["count"]
    feats: dict[int, list] = {layer: [None] * count for layer in chosen}
    for shard in manifest["shards"]:
        for name, tensor in load_file(str(directory / shard)).items():
            index, layer = (int(part) for part in name.split("/"))
            if layer in feats:
                feats[layer][index] = tensor
    holes = [i for i, t in enumerate(feats[chosen[0]]) if t is None] if chosen else []
    if holes:
        raise ValueError(f"{directory} lacks the features of examples {holes[:5]}; compute them again")
    return feats
