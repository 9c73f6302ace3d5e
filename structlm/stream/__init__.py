"""Streams front-end: group position encoding (GPE) for reading and writing at once.

Source tokens count positions from 0 and target tokens from ``phi``, however reads and writes interleave; a
target token sees the earlier target and the source read when its successor is written (the paper's shift by
one). :func:`plan` gives the batch / training Plan under a read/write policy; ``structlm.hf.StreamSession``
runs the same policy live with nothing ever re-encoded. Nothing in this package imports the runtime.

* :mod:`structlm.stream.policy`: ``WaitK``, ``Replay``, the action sequence a policy makes;
* :mod:`structlm.stream.layout`: ``plan``, ``labels``, ``StreamTemplate``, ``GroupPositions``, ``split_words``;
* :mod:`structlm.stream.latency`: AL and LAAL (SimulEval's formulas);
* :mod:`structlm.stream.trace`: a picture of a read/write trace.
"""
from structlm.lazy import lazy_exports

_EXPORTS = {
    "WaitK": "structlm.stream.policy",
    "Replay": "structlm.stream.policy",
    "actions": "structlm.stream.policy",
    "plan": "structlm.stream.layout",
    "labels": "structlm.stream.layout",
    "frontiers": "structlm.stream.layout",
    "StreamTemplate": "structlm.stream.layout",
    "GroupPositions": "structlm.stream.layout",
    "split_words": "structlm.stream.layout",
    "al": "structlm.stream.latency",
    "laal": "structlm.stream.latency",
    "delays_from_trace": "structlm.stream.latency",
    "show_trace": "structlm.stream.trace",
    "trace_text": "structlm.stream.trace",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
