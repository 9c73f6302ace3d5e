"""structlm: structure-aware inputs for Hugging Face models.

Converters turn graphs, code, retrieved documents, candidate sets and streams into Plans (positions plus
block attention masks); ``structlm.hf.StructuredLM`` executes any Plan exactly on a transformers model.
"""
from structlm.masks import and_masks, anchor, or_masks, sliding_window
from structlm.plan import Plan, PlanError, Segment

__version__ = "0.1.0"

__all__ = ["Plan", "Segment", "PlanError", "and_masks", "or_masks", "sliding_window", "anchor", "__version__"]
