"""Candidate sets front-end: Uni-Encoder plans (a context and every candidate in one pass), metrics, tasks.

Every function here builds a :class:`~structlm.plan.Plan` or measures a ranking; the runtime scores it
(``structlm.hf.ranking.rank``, ``StructuredLM.score``; the trainable head and its fine-tuning loop are in
``structlm.hf.ranking_train``). Nothing in this package imports the runtime.

* :mod:`structlm.candidates.layout`: ``uni_encoder`` (masks ``arrow``, ``diag``, ``square``, ``no-peek``; the
  decoder form), ``candidate_names``, ``context_name``;
* :mod:`structlm.candidates.metrics`: ``recall_at_k``, ``mrr``, ``ranking``, ``summary``;
* :mod:`structlm.candidates.tasks`: ``Example``, ``docstring_examples`` (the standard-library docstring task),
  ``in_batch_negatives``, ``training_plans``, ``split``.
"""
from structlm.lazy import lazy_exports

_EXPORTS = {
    "MASKS": "structlm.candidates.layout",
    "uni_encoder": "structlm.candidates.layout",
    "candidate_names": "structlm.candidates.layout",
    "context_name": "structlm.candidates.layout",
    "is_decoder_kind": "structlm.candidates.layout",
    "ranking": "structlm.candidates.metrics",
    "gold_rank": "structlm.candidates.metrics",
    "recall_at_k": "structlm.candidates.metrics",
    "mrr": "structlm.candidates.metrics",
    "summary": "structlm.candidates.metrics",
    "Example": "structlm.candidates.tasks",
    "docstring_examples": "structlm.candidates.tasks",
    "stdlib_functions": "structlm.candidates.tasks",
    "in_batch_negatives": "structlm.candidates.tasks",
    "training_plans": "structlm.candidates.tasks",
    "split": "structlm.candidates.tasks",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
