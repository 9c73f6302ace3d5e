"""Encoding contexts into a segment store exactly as ``rag.parallel`` lays them out, one batch at a time.

Why this is exact: a context's cache key hashes the model, its tokens, its positions and the key of the prefix
it sees. :func:`structlm.rag.parallel` puts every context at ``P..P+L-1`` after the prefix, whatever the other
contexts are, so prefilling the plan of a batch (less its query) writes the very entries a later
``parallel(tokenizer, some_contexts, query, prefix)`` plan looks up.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from structlm.hf.cache import SegmentCache, segment_key
from structlm.hf.model import StructuredLM
from structlm.rag import parallel
from structlm.rag.prompt import PREFIX, QUERY
from structlm.text import token_ids

__all__ = ["ENCODED", "PRESENT", "FAILED", "encode_batch", "load_encoder", "ContextEncoder"]

ENCODED, PRESENT, FAILED = "encoded", "present", "failed"


def load_encoder(model: str | os.PathLike, cache_dir: str | os.PathLike, tokenizer: Any = None,
                 max_bytes: int = 2**28) -> StructuredLM:
    """A StructuredLM (path, hub id or embedded name) on the shared store ``cache_dir``; ``tokenizer`` is a
    tokenizer, a path or name to load one from, or None for the model's own."""
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
    lm = StructuredLM.from_pretrained(str(model), tokenizer=True if tokenizer is None else tokenizer,
                                      cache=SegmentCache(max_bytes=max_bytes, directory=cache_dir))
    if not lm.is_decoder:
        raise ValueError(f"{model} is an encoder: contexts are cached for decoders (KV reuse) only")
    return lm


def _key(lm: StructuredLM, segment, seen: Sequence[str]) -> str:
    return segment_key(lm.fingerprint, segment.input_ids, segment.positions, segment.causal, seen)


def encode_batch(lm: StructuredLM, texts: Sequence[str], prefix: str = "", template=None) -> list[dict]:
    """Encode ``texts`` into ``lm.cache`` as parallel contexts under ``prefix``; per text a status row
    (``encoded`` / ``present`` / ``failed`` with a reason) and its cache key."""
    rows: list[dict] = [{}] * len(texts)
    usable: list[int] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            rows[i] = {"status": FAILED, "reason": f"not a string but {type(text).__name__}", "key": ""}
        elif token_ids(lm.tokenizer, text, f"context {i}", "context", template).numel() == 0:
            rows[i] = {"status": FAILED, "reason": "empty after tokenization", "key": ""}
        else:
            usable.append(i)
    if not usable:
        return rows
    plan = parallel(lm.tokenizer, [texts[i] for i in usable], [0], prefix=prefix, template=template)
    plan = plan.subplan([n for n in plan.names if n != QUERY])
    prefix_keys = [_key(lm, plan[PREFIX], [])] if PREFIX in plan else []
    missing, seen_now = [], set()
    for slot, i in enumerate(usable):
        name = f"context{slot}"
        key = _key(lm, plan[name], prefix_keys)
        if key in seen_now or key in lm.cache:
            rows[i] = {"status": PRESENT, "reason": "", "key": key}
            continue
        seen_now.add(key)
        try:
            lm.check_plan(plan.subplan(([PREFIX] if prefix_keys else []) + [name]))
        except ValueError as error:
            rows[i] = {"status": FAILED, "reason": str(error), "key": key}
            continue
        missing.append(name)
        rows[i] = {"status": ENCODED, "reason": "", "key": key}
    if missing:
        lm.prefill(plan.subplan(([PREFIX] if prefix_keys else []) + missing))
    return rows


class ContextEncoder:
    """A Ray Data actor: one StructuredLM on the shared store, encoding batches of the ``text`` column.

    A model that cannot load is reported by every batch as ``load_error`` rows (the driver raises once with the
    worker's reason) rather than killing the actor, which Ray would restart and fail again.
    """

    def __init__(self, model: str, cache_dir: str, prefix: str, template, tokenizer, threads: int = 1) -> None:
        torch.set_num_threads(max(1, threads))
        self.prefix, self.template = prefix, template
        self.lm = None
        self.error = ""
        try:
            self.lm = load_encoder(model, cache_dir, tokenizer)
        except Exception as error:  # reported to the driver, which raises one clear error
            self.error = f"{type(error).__name__}: {error}"

    def __call__(self, batch: dict) -> dict:
        import time

        texts = list(batch["text"])
        started = time.time()
        if self.lm is None:
            rows = [{"status": "load_error", "reason": self.error, "key": ""} for _ in texts]
        else:
            rows = encode_batch(self.lm, texts, self.prefix, self.template)
        out = {name: [row[name] for row in rows] for name in ("status", "reason", "key")}
        out["started"], out["finished"] = [started] * len(rows), [time.time()] * len(rows)  # the encode span
        return out
