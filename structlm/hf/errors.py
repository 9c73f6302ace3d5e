"""Errors of the runtime: each names what went wrong and what to do."""
from __future__ import annotations

from structlm.plan import PlanError

__all__ = ["CacheError", "CacheMismatchError", "CorruptCacheError", "PositionRangeError", "BackendError"]


class CacheError(ValueError):
    """A segment cache that cannot be used."""


class CacheMismatchError(CacheError):
    """Keys and values made by another model: never loaded silently."""


class CorruptCacheError(CacheError):
    """A cache file that is truncated, garbled or of another format."""


class PositionRangeError(PlanError):
    """Plan positions the model cannot represent (beyond max_position_embeddings, or fractional for a table)."""


class BackendError(PlanError):
    """A backend asked for something it cannot do (reuse on an encoder or a cyclic plan, flex without compile)."""
