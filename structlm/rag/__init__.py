"""RAG front-end: plans for parallel-encoded contexts (APE) and Graph-KV chunk graphs.

Every function here builds a :class:`~structlm.plan.Plan` and nothing else; the runtime
(``structlm.hf.StructuredLM``) executes it, and APE's attention re-weighting lives in
``structlm.hf.APE``. Nothing in this package imports the runtime.

* :mod:`structlm.rag.ape`: ``parallel`` (APE / PCW), ``sequential``, ``context_names``;
* :mod:`structlm.rag.graphs`: ``graph_kv``, ``graph_kv_rag``, ``ego_graphs``, ``citation``, ``graph_kv_rounds``;
* :mod:`structlm.rag.prompt`: a prompt's parts as ids (shared by both);
* ``Template`` and ``demo_tokenizer`` come from :mod:`structlm.text`.
"""
from structlm.lazy import lazy_exports

_EXPORTS = {
    "parallel": "structlm.rag.ape",
    "sequential": "structlm.rag.ape",
    "context_names": "structlm.rag.ape",
    "graph_kv": "structlm.rag.graphs",
    "graph_kv_rag": "structlm.rag.graphs",
    "graph_kv_rounds": "structlm.rag.graphs",
    "ego_graphs": "structlm.rag.graphs",
    "citation": "structlm.rag.graphs",
    "Template": "structlm.text",
    "demo_tokenizer": "structlm.text",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
