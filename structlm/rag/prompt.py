"""A RAG prompt's parts as token ids: prefix (with the BOS rule), contexts or chunks, query, and their names.

Shared by the APE and Graph-KV layouts, so both read text, names and empty parts the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from structlm.layouts import Part
from structlm.text import Text, TemplateLike, prefix_ids, token_ids

__all__ = ["PREFIX", "QUERY", "Prompt", "prompt_parts", "unique_names", "as_list"]

PREFIX = "prefix"
QUERY = "query"


def unique_names(names: Sequence[str] | None, count: int, default: str) -> list[str]:
    """``names`` checked (one per item, non-empty, unique, not ``prefix``/``query``), or ``{default}{i}``."""
    if names is None:
        return [f"{default}{i}" for i in range(count)]
    names = list(names)
    if len(names) != count:
        raise ValueError(f"{len(names)} names for {count} {default}s; give one name per {default}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{default} names must be non-empty strings, got {name!r}")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate {default} names {dupes}")
    clash = {PREFIX, QUERY} & set(names)
    if clash:
        raise ValueError(f"{default} names {sorted(clash)} are reserved for the prefix and the query segments")
    return names


def as_list(values, what: str) -> list:
    """A list of texts / id lists; a lone string or tensor is refused (it is one item, not a list of them)."""
    if isinstance(values, (str, torch.Tensor)):
        raise TypeError(f"{what} must be a list of texts or token-id lists, not a single {type(values).__name__}")
    return list(values)


@dataclass(frozen=True)
class Prompt:
    """Token ids of a prompt's parts: ``prefix`` (maybe empty), the ``items`` (contexts or chunks), the ``query``."""

    prefix: torch.Tensor
    items: list[Part]
    query: torch.Tensor

    @property
    def base(self) -> list[str]:
        """What every item sees: the prefix segment, when there is one."""
        return [PREFIX] if self.prefix.numel() else []

    def prefix_part(self) -> Part | None:
        """The prefix as a part (role ``prefix``), or None when empty."""
        return Part(PREFIX, input_ids=self.prefix, role="prefix") if self.prefix.numel() else None

    def query_part(self) -> Part:
        """The query as a part (role ``query``)."""
        return Part(QUERY, input_ids=self.query, role="query")


def prompt_parts(tokenizer, items: Sequence[Text], query: Text, prefix: Text, template: TemplateLike | None,
                 add_bos: bool | None, names: Sequence[str] | None, default: str = "context",
                 role: str = "context") -> Prompt:
    """Tokenize a RAG prompt: no special tokens inside any part, the BOS once at the start of the prefix."""
    items = as_list(items, f"{default}s")
    ids = []
    for i, item in enumerate(items):
        tokens = token_ids(tokenizer, item, f"{default} {i}", "context", template)
        if tokens.numel() == 0:
            raise ValueError(f"{default} {i} is empty after tokenization; drop it or give it some text")
        ids.append(tokens)
    query_ids = token_ids(tokenizer, query, "query", "query", template)
    if query_ids.numel() == 0:
        raise ValueError("the query is empty after tokenization; the query segment needs at least one token")
    names = unique_names(names, len(ids), default)
    parts = [Part(name, input_ids=tokens, role=role) for name, tokens in zip(names, ids)]
    return Prompt(prefix_ids(tokenizer, prefix, template, add_bos), parts, query_ids)
