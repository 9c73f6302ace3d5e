"""The runtime: execute any Plan on a Hugging Face model (``StructuredLM``), with cached segment KV."""
from structlm.hf import sdpa as _register_grouped_sdpa  # noqa: F401  (registers structlm_sdpa)
from structlm.hf.attention import APE
from structlm.hf.cache import CacheEntry, SegmentCache, model_fingerprint
from structlm.hf.errors import BackendError, CacheError, CacheMismatchError, CorruptCacheError, PositionRangeError
from structlm.hf.model import PlanState, StructuredLM, StructuredOutput

__all__ = [
    "StructuredLM", "APE", "StructuredOutput", "PlanState", "SegmentCache", "CacheEntry", "model_fingerprint",
    "BackendError", "CacheError", "CacheMismatchError", "CorruptCacheError", "PositionRangeError",
]
