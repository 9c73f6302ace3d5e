"""structlm: structure-aware inputs for Hugging Face models.

Converters turn graphs, code and retrieved documents into Plans (positions plus block attention masks);
``structlm.hf.StructuredLM`` executes any Plan exactly on a transformers model.

The names below load on first use, so ``import structlm.cli`` (the command) starts without importing torch.
"""
from __future__ import annotations

from structlm.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Plan": "structlm.plan",
    "Segment": "structlm.plan",
    "StructlmError": "structlm.errors",
    "PlanError": "structlm.errors",
    "and_masks": "structlm.masks",
    "or_masks": "structlm.masks",
    "sliding_window": "structlm.masks",
    "anchor": "structlm.masks",
    "Template": "structlm.text",
    "StructuredLM": "structlm.hf",
    "SegmentCache": "structlm.hf",
    "APE": "structlm.hf",
}
_SUBPACKAGES = ("rag", "graph", "code", "stream", "candidates", "probe", "hf", "layouts", "masks", "text", "testing", "errors")

__all__ = [*_EXPORTS, "__version__"]
_getattr, __dir__ = lazy_exports(__name__, _EXPORTS)


def __getattr__(name: str):
    """Public names, and front-end subpackages as attributes (``structlm.rag.parallel``) on first use."""
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"structlm.{name}")
    return _getattr(name)
