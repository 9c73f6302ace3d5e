"""Past one machine: corpora encoded on Ray Data into a shared segment store, probing features computed across
workers, and (in the runtime, :mod:`structlm.hf.offload`) models dispatched by accelerate.

* :mod:`structlm.scale.corpus`: ``encode_corpus`` (contexts → the shared store), ``read_contexts``;
* :mod:`structlm.scale.features`: ``layer_features`` (hidden states for ``probe_layers``, as safetensors shards);
* :mod:`structlm.scale.encoder`: what each worker runs (``encode_batch``, exactly ``rag.parallel``'s layout);
* :mod:`structlm.scale.cluster`: Ray started locally when no cluster is joined;
* the store itself: :mod:`structlm.hf.store` (``prune_store``, ``store_stats``). Guide: docs/scale.md.

Sits on top: it imports the runtime and the front-ends; nothing imports it.
"""
from structlm.lazy import lazy_exports

_EXPORTS = {
    "encode_corpus": "structlm.scale.corpus",
    "CorpusReport": "structlm.scale.corpus",
    "read_contexts": "structlm.scale.corpus",
    "encode_batch": "structlm.scale.encoder",
    "layer_features": "structlm.scale.features",
    "load_features": "structlm.probe.features",
    "ensure_ray": "structlm.scale.cluster",
    "WorkerError": "structlm.scale.cluster",
    "prune_store": "structlm.hf.store",
    "store_stats": "structlm.hf.store",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
