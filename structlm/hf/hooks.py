"""The attention-hook protocol: what a custom attention (APE is one) gives the runtime.

A hook changes how some rows weigh some keys, through a function registered with transformers'
``AttentionInterface`` under ``implementation``. The runtime asks it, for every masked call, which keyword
arguments that call needs (``forward_kwargs``, given the plan token indices of its query rows and key columns,
-1 for generated tokens), and which segments' keys and values it changes (``affected_segments``: those are
recomputed, never mixed with plainly cached ones). A hook without ``affected_segments`` is taken to touch every
segment, so nothing is cached under it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from structlm.plan import Plan

__all__ = ["AttentionHook", "affected_segments"]


@runtime_checkable
class AttentionHook(Protocol):
    """A custom attention the runtime can run on the dense and reuse backends."""

    implementation: str

    def forward_kwargs(self, plan: "Plan", rows: torch.Tensor, cols: torch.Tensor) -> dict[str, Any]:
        """Keyword arguments for the model call whose queries are plan tokens ``rows`` and keys ``cols``."""
        ...


def affected_segments(hook: AttentionHook | None, plan: "Plan") -> set[str]:
    """Segments whose keys/values ``hook`` changes: none without a hook, all when it does not say."""
    if hook is None:
        return set()
    affected = getattr(hook, "affected_segments", None)
    names: Iterable[str] = affected(plan) if affected is not None else plan.names
    return set(names)
