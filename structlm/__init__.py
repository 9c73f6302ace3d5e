"""structlm: structure-aware inputs for Hugging Face models.

Converters turn graphs, code and retrieved documents into Plans (positions plus block attention masks);
``structlm.hf.StructuredLM`` executes any Plan exactly on a transformers model.

The names below load on first use, so ``import structlm.cli`` (the command) starts without importing torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "Plan": "structlm.plan",
    "Segment": "structlm.plan",
    "PlanError": "structlm.plan",
    "and_masks": "structlm.masks",
    "or_masks": "structlm.masks",
    "sliding_window": "structlm.masks",
    "anchor": "structlm.masks",
    "StructuredLM": "structlm.hf",
    "SegmentCache": "structlm.hf",
    "APE": "structlm.hf",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from structlm.hf import APE, SegmentCache, StructuredLM
    from structlm.masks import and_masks, anchor, or_masks, sliding_window
    from structlm.plan import Plan, PlanError, Segment


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'structlm' has no attribute {name!r}")
