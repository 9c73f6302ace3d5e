"""``AddAnchorDistances``: the NT-LLM anchor encoding as a PyG transform, beside ``AddRandomWalkPE``.

Imported lazily by :mod:`structlm.graph`, so that importing the graph front end does not import torch_geometric.
With PyG installed the transform is registered like PyG's own (``functional_transform('add_anchor_distances')``),
so ``data.add_anchor_distances()``-style functional use and ``T.Compose`` work; without it a stand-in base class
keeps PyG's convention of transforming a shallow copy, never the caller's object.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch

from structlm.graph.anchors import select_anchors
from structlm.graph.distances import UNREACHABLE, anchor_distances
from structlm.graph.input import as_graph

try:
    from torch_geometric.data.datapipes import functional_transform
    from torch_geometric.transforms import BaseTransform
except ImportError:  # pragma: no cover - exercised only without the optional dependency
    def functional_transform(name: str) -> Callable[[type], type]:
        """Without PyG there is no registry: the class is returned as it is."""
        return lambda cls: cls

    class BaseTransform:  # type: ignore[no-redef]
        """Stand-in with PyG's calling convention, so the transform works on any object with ``edge_index``."""

        def __call__(self, data: Any) -> Any:
            return self.forward(copy.copy(data))  # as PyG: the input is never changed in place

        def __repr__(self) -> str:
            return f"{self.__class__.__name__}()"


@functional_transform("add_anchor_distances")
class AddAnchorDistances(BaseTransform):
    """Adds hop distances to greedily chosen anchors (NT-LLM) as a node attribute ``[num_nodes, num_anchors]``.

    Anchors come from :func:`structlm.graph.select_anchors` with ``radius``, ``coverage``, ``max_anchors`` and
    ``seed``; their node indices are stored as ``data.<anchors_attr>`` (a long tensor, default ``anchor_index``: the
    word "index" makes PyG's ``Batch`` shift them by each graph's node offset, so they stay correct after
    batching). ``attr_name=None`` concatenates the distances to ``data.x`` like PyG's positional encodings do.
    ``edge_index`` is read as arcs (PyG's convention: an undirected graph stores both arcs); pass
    ``directed=False`` to add the reverse of every arc first. The distance tensor is float32 (what a network
    consumes), with ``unreachable`` for nodes no anchor reaches.
    """

    def __init__(self, radius: int = 2, coverage: float = 0.95, attr_name: str | None = "anchor_pe", *,
                 max_anchors: int | None = None, seed: int | None = None, max_distance: int | None = None,
                 unreachable: float = UNREACHABLE, directed: bool | None = None,
                 anchors_attr: str = "anchor_index") -> None:
        self.radius = radius
        self.coverage = coverage
        self.attr_name = attr_name
        self.max_anchors = max_anchors
        self.seed = seed
        self.max_distance = max_distance
        self.unreachable = unreachable
        self.directed = directed
        self.anchors_attr = anchors_attr

    def forward(self, data: Any) -> Any:
        if getattr(data, "edge_index", None) is None:
            raise ValueError("AddAnchorDistances needs data.edge_index")
        graph = as_graph(data, directed=self.directed)
        anchors = np.asarray(select_anchors(graph, self.radius, self.coverage, self.max_anchors, self.seed))
        dist = anchor_distances(graph, anchors, max_distance=self.max_distance, unreachable=self.unreachable,
                                dtype=np.float32)
        device = data.edge_index.device
        value = torch.from_numpy(dist).to(device)
        if self.attr_name is None:
            x = getattr(data, "x", None)
            if x is not None:
                x = x.view(-1, 1) if x.dim() == 1 else x
                data.x = torch.cat([x, value.to(x.device, x.dtype)], dim=-1)
            else:
                data.x = value
        else:
            data[self.attr_name] = value
        data[self.anchors_attr] = torch.from_numpy(anchors.astype(np.int64)).to(device)
        return data

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(radius={self.radius}, coverage={self.coverage}, "
                f"attr_name={self.attr_name!r})")
