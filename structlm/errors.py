"""Every structlm error, beneath one base: each names what went wrong and what to do.

A leaf module (it imports nothing of structlm), so the core, the front-ends and the runtime can all raise from
here. Every class is a ``ValueError`` (the input is what is wrong), so ``except ValueError`` keeps working;
``except StructlmError`` catches exactly what structlm raises on purpose.
"""
from __future__ import annotations

from typing import Any, Sequence

__all__ = [
    "StructlmError",
    "PlanError",
    "CycleError",
    "BackendError",
    "PositionRangeError",
    "CacheError",
    "CacheMismatchError",
    "CorruptCacheError",
    "GraphInputError",
    "UnknownLanguageError",
    "CodeSyntaxError",
    "AlignmentError",
    "EmbeddedModelError",
]


class StructlmError(ValueError):
    """Base of every error structlm raises on purpose."""


# ------------------------------------------------------------------------------------------------- plans
class PlanError(StructlmError):
    """A plan that cannot mean anything: the message says what is wrong and how to fix it."""


class CycleError(PlanError):
    """Visibility (or a dependency graph) is cyclic where an order is needed. ``cycle`` lists one cycle."""

    def __init__(self, message: str, cycle: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.cycle = list(cycle)


# ------------------------------------------------------------------------------------------------- runtime
class BackendError(StructlmError):
    """A backend asked for something it cannot do (reuse on an encoder or a cyclic plan, flex without compile)."""


class PositionRangeError(StructlmError):
    """Plan positions the model cannot represent (beyond max_position_embeddings, or fractional for a table)."""


class CacheError(StructlmError):
    """A segment cache that cannot be used."""


class CacheMismatchError(CacheError):
    """Keys and values made by another model: never loaded silently."""


class CorruptCacheError(CacheError):
    """A cache file that is truncated, garbled (its digest does not match), of another format, or a directory."""


class EmbeddedModelError(StructlmError):
    """An embedded model that cannot be loaded: unknown name, wheel not installed, unreadable copy."""


# ------------------------------------------------------------------------------------------------- front-ends
class GraphInputError(StructlmError):
    """A graph that contradicts itself (an arc to a node outside ``num_nodes``, a negative id, a bad shape)."""


class UnknownLanguageError(StructlmError):
    """Raised for a language with no spec under ``parsers/``; the message lists the supported ones."""


class CodeSyntaxError(StructlmError, SyntaxError):
    """A strict parse found ERROR or MISSING nodes. ``issues`` lists them all; ``lineno``/``offset`` is the first.

    Lines and columns are 1-based; the column counts characters (not bytes) so it matches an editor.
    Also a ``SyntaxError``, as Python's own parser would raise.
    """

    def __init__(self, message: str, issues: Sequence[Any]):
        first = issues[0]
        super().__init__(message)
        self.msg = message
        self.lineno = first.line
        self.offset = first.column
        self.issues = list(issues)

    def __str__(self) -> str:  # SyntaxError's default __str__ appends "(line N)"; keep our full message
        return self.msg


class AlignmentError(StructlmError):
    """Some code tokens got no sub-word from the tokenizer (e.g. empty tokens, or characters it drops)."""
