"""The runtime: execute any Plan on a Hugging Face model (``StructuredLM``), with cached segment KV.

* :mod:`structlm.hf.model`: ``StructuredLM`` — backends, forward, prefill, score, generate, hidden states;
* :mod:`structlm.hf.call`: one model call (attention implementation → mask format, inputs, positions, head);
* :mod:`structlm.hf.reuse`: the KV-reuse executor (``PlanState``, the schedule, cache lookups, re-positioning);
* :mod:`structlm.hf.batch`, :mod:`structlm.hf.scoring`, :mod:`structlm.hf.generation`: the uses;
* :mod:`structlm.hf.cache`: ``SegmentCache`` (LRU + safetensors store); :mod:`structlm.hf.room`: in-place caches;
* :mod:`structlm.hf.attention`: ``APE``; :mod:`structlm.hf.hooks`: the ``AttentionHook`` protocol;
  :mod:`structlm.hf.sdpa`: grouped-head sdpa; :mod:`structlm.hf.rope`: re-rotation of cached keys;
* :mod:`structlm.hf.stream_session`: ``StreamSession`` — a live stream (group positions, read/write, no re-encoding).
* :mod:`structlm.hf.ranking`: ``rank`` — candidates scored in one pass and sorted; :mod:`structlm.hf.ranking_train`:
  ``RankingHead`` (pooled states → logit, save/load) and ``fine_tune`` (cross-entropy over candidates);
* :mod:`structlm.hf.embedded`: ``load_embedded`` — the trained models shipped in wheels (SmolLM2, MiniLM).
"""
from structlm.lazy import lazy_exports

_EXPORTS = {
    "StructuredLM": "structlm.hf.model",
    "StructuredOutput": "structlm.hf.outputs",
    "PlanState": "structlm.hf.reuse",
    "APE": "structlm.hf.attention",
    "StreamSession": "structlm.hf.stream_session",
    "stream_loss": "structlm.hf.stream_session",
    "AttentionHook": "structlm.hf.hooks",
    "SegmentCache": "structlm.hf.cache",
    "CacheEntry": "structlm.hf.cache",
    "model_fingerprint": "structlm.hf.cache",
    "load_embedded": "structlm.hf.embedded",
    "rank": "structlm.hf.ranking",
    "Ranking": "structlm.hf.ranking",
    "RankingHead": "structlm.hf.ranking_train",
    "TrainReport": "structlm.hf.ranking_train",
    "fine_tune": "structlm.hf.ranking_train",
    "EmbeddedModelError": "structlm.errors",
    "BackendError": "structlm.errors",
    "CacheError": "structlm.errors",
    "CacheMismatchError": "structlm.errors",
    "CorruptCacheError": "structlm.errors",
    "PositionRangeError": "structlm.errors",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
