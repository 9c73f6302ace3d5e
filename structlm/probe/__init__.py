"""AST-Probe on hidden states: is the syntax tree linearly recoverable from a model's layers?

* :mod:`structlm.probe.data`: functions from source files, (d, c, u) examples, per-layer features;
* :mod:`structlm.probe.train`: the probe, its training and constituent-F1 evaluation;
* :mod:`structlm.probe.table`: results per model and layer, as Markdown, JSON and a picture;
* :mod:`structlm.probe.run`: ``probe_layers`` / ``probe_with_baselines`` / ``probe_source``;
* :mod:`structlm.probe.features`: precomputed features (``load_features``; written by ``structlm.scale``).
"""
from structlm.lazy import lazy_exports

_EXPORTS = {
    "ProbeExample": "structlm.probe.data",
    "packaged_minilm_path": "structlm.probe.data",
    "load_packaged_minilm": "structlm.probe.data",
    "load_model": "structlm.probe.data",
    "random_weights_copy": "structlm.probe.data",
    "collect_functions": "structlm.probe.data",
    "make_examples": "structlm.probe.data",
    "layer_features": "structlm.probe.data",
    "ASTProbe": "structlm.probe.train",
    "label_sets": "structlm.probe.train",
    "train_probe": "structlm.probe.train",
    "evaluate_probe": "structlm.probe.train",
    "ProbeRow": "structlm.probe.table",
    "ProbeTable": "structlm.probe.table",
    "probe_layers": "structlm.probe.run",
    "probe_with_baselines": "structlm.probe.run",
    "probe_source": "structlm.probe.run",
    "load_features": "structlm.probe.features",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
