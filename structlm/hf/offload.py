"""Models dispatched by accelerate (``device_map``, ``cpu_offload``, ``disk_offload``): where weights really are.

Why: under accelerate's offload hooks a module's parameters are meta tensors until its forward runs; the hook
(``AlignDevicesHook``) keeps the real weights in its ``weights_map`` (a state dict in CPU memory, or memory-mapped
files for "disk") and moves inputs to its ``execution_device``. So the runtime reads weights (for the cache's
fingerprint) from the weights maps, sends inputs to the embedding's execution device, and keeps each layer's
cached keys and values on the device where that layer runs. A model with no hooks reads as it is.
"""
from __future__ import annotations

from typing import Iterator

import torch

from structlm.errors import BackendError

__all__ = ["is_dispatched", "named_weights", "execution_device", "layer_devices", "to_devices"]


def _hooks(module: torch.nn.Module) -> list:
    """A module's accelerate hooks (the members of a SequentialHook, or the one hook)."""
    hook = getattr(module, "_hf_hook", None)
    if hook is None:
        return []
    return list(getattr(hook, "hooks", None) or [hook])


def is_dispatched(model: torch.nn.Module) -> bool:
    """True when accelerate hooks (``dispatch_model``, ``cpu_offload``…) sit on the model or its modules."""
    return any(_hooks(m) for m in model.modules())


def _offloaded(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full state-dict name -> real tensor, for every tensor an offloading hook's weights map holds."""
    found: dict[str, torch.Tensor] = {}
    for prefix, module in model.named_modules():
        for hook in _hooks(module):
            weights = getattr(hook, "weights_map", None)
            if weights is None or not getattr(hook, "offload", False):
                continue
            own = [n for n, _ in module.named_parameters(recurse=False)]
            own += [n for n, _ in module.named_buffers(recurse=False)]
            for name in own:
                try:
                    found[f"{prefix}.{name}" if prefix else name] = weights[name]
                except KeyError:
                    continue
    return found


def named_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's state dict with real tensors: offloaded (meta) entries read from the hooks' weights maps.

    Names, shapes and values are the plain model's, so a dispatched model has the same fingerprint and uses the
    same segment store as the model loaded whole.
    """
    state = model.state_dict()
    meta = [name for name, tensor in state.items() if tensor.is_meta]
    offloaded = _offloaded(model) if meta else {}
    for name, tensor in state.items():
        if tensor.is_meta:
            tensor = offloaded.get(name)
            if tensor is None:
                raise BackendError(
                    f"weight {name!r} is a meta tensor and no accelerate hook holds its value (a model built with "
                    f"init_empty_weights and never loaded?); load the checkpoint, e.g. with "
                    f"from_pretrained(..., device_map=...) or accelerate.load_checkpoint_and_dispatch"
                )
        yield name, tensor


def _module_device(module: torch.nn.Module) -> torch.device | None:
    """Where ``module`` computes: the first hook's execution device inside it, else its first real tensor's."""
    for sub in module.modules():
        for hook in _hooks(sub):
            device = getattr(hook, "execution_device", None)
            if device is not None:
                return torch.device(device if not isinstance(device, int) else f"cuda:{device}")
    for tensor in list(module.parameters()) + list(module.buffers()):
        if not tensor.is_meta:
            return tensor.device
    return None


def execution_device(model: torch.nn.Module) -> torch.device:
    """Where inputs go: the input embedding's execution device (the first weight's device without hooks)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    for module in ([embeddings] if embeddings is not None else []) + [model]:
        device = _module_device(module)
        if device is not None:
            return device
    return torch.device("cpu")


def _layer_list(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    return None


def layer_devices(model: torch.nn.Module) -> list[torch.device] | None:
    """Per decoder layer, the device it runs on; None when the model is not dispatched (one device)."""
    if not is_dispatched(model):
        return None
    layers = _layer_list(model)
    if layers is None:
        return None
    fallback = execution_device(model)
    return [_module_device(layer) or fallback for layer in layers]


def to_devices(tensors: list[torch.Tensor], devices: list[torch.device] | None) -> list[torch.Tensor]:
    """Per-layer tensors each on its layer's device (unchanged when ``devices`` is None or they are there)."""
    if devices is None or len(devices) != len(tensors):
        return tensors
    return [t if t.device == d else t.to(d) for t, d in zip(tensors, devices)]
