"""NT-LLM node tokens: anchor-distance vectors -> soft tokens of an LLM's width, with rank-preserving pretraining.

NT-LLM describes node ``v`` by ``d_v = [d(v, a_1), ..., d(v, a_K)]`` (hops to the anchors of
:func:`structlm.graph.select_anchors`), encodes it into a position embedding ``p_v`` that is *pretrained* so that
embedding distances keep the order of graph distances, and projects ``p_v`` to soft tokens for the LLM. The
released code has the projector (``Linear -> Sigmoid -> Linear``) but not the encoder or its pretraining loss; the
encoder and the loss here are our choices, documented as such.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from structlm.graph.distances import distances_from_index
from structlm.graph.input import as_graph

__all__ = ["NodeTokenizer", "FitReport", "rank_margin_loss", "spearman"]


def rank_margin_loss(anchor: torch.Tensor, near: torch.Tensor, far: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Triplet margin ranking loss: ``mean(relu(|p_u - p_v| - |p_u - p_w| + margin))``.

    For triplets ``(u, v, w)`` with ``d_G(u, v) < d_G(u, w)``, it is zero once ``v`` sits closer to ``u`` than ``w``
    does by at least ``margin`` in the embedding: embedding distances then keep the order of hop distances.
    **Our choice**: the NT-LLM paper names a "rank-preserving objective" but its exact formula was never published.
    """
    closer = torch.linalg.vector_norm(anchor - near, dim=-1)
    farther = torch.linalg.vector_norm(anchor - far, dim=-1)
    return torch.relu(closer - farther + margin).mean()


def spearman(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Spearman rank correlation (average ranks for ties), as scipy.stats.spearmanr computes it."""
    from scipy.stats import spearmanr

    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    return float(spearmanr(x, y).statistic)


@dataclass
class FitReport:
    """What :meth:`NodeTokenizer.fit` measured: the loss per step and the held-out Spearman correlation between
    embedding distance and hop distance before and after training."""

    losses: list[float] = field(default_factory=list)
    spearman_before: float = float("nan")
    spearman_after: float = float("nan")
    heldout_pairs: int = 0

    def __str__(self) -> str:
        first = self.losses[0] if self.losses else float("nan")
        last = self.losses[-1] if self.losses else float("nan")
        return (f"loss {first:.4f} -> {last:.4f} over {len(self.losses)} steps; held-out Spearman "
                f"{self.spearman_before:.3f} -> {self.spearman_after:.3f} on {self.heldout_pairs} pairs")


class NodeTokenizer(nn.Module):
    """Anchor distances ``[N, num_anchors]`` -> soft tokens ``[N, tokens_per_node, hidden_size]``.

    * ``normalize``: hops clipped to ``max_distance + 1`` and scaled to ``[0, 1]``; any negative, non-finite or
      larger value (the unreachable sentinel, whatever it is) reads as "farthest", 1.0. Raw hop counts and a 9999
      sentinel would swamp a network.
    * ``encoder`` (our choice, NT-LLM's was not released): ``Linear -> GELU -> Linear`` to ``embed_dim``; its output
      ``p_v`` is what :meth:`fit` pretrains with :func:`rank_margin_loss`.
    * ``projector`` (as in the released ``ntllm.py``): ``Linear -> Sigmoid -> Linear`` to
      ``tokens_per_node * hidden_size``, trained later together with (or in front of) the LLM.
    """

    def __init__(self, num_anchors: int, hidden_size: int, tokens_per_node: int = 1, *, embed_dim: int = 128,
                 projector_dim: int | None = None, max_distance: int = 8) -> None:
        super().__init__()
        for name, value in (("num_anchors", num_anchors), ("hidden_size", hidden_size),
                            ("tokens_per_node", tokens_per_node), ("embed_dim", embed_dim),
                            ("max_distance", max_distance)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.num_anchors = num_anchors
        self.hidden_size = hidden_size
        self.tokens_per_node = tokens_per_node
        self.max_distance = max_distance
        width = projector_dim or max(embed_dim, min(2048, hidden_size))
        self.encoder = nn.Sequential(nn.Linear(num_anchors, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))
        self.projector = nn.Sequential(nn.Linear(embed_dim, width), nn.Sigmoid(),
                                       nn.Linear(width, tokens_per_node * hidden_size))

    def _as_tensor(self, distances: Any) -> torch.Tensor:
        param = next(self.parameters())
        values = torch.as_tensor(np.asarray(distances) if not isinstance(distances, torch.Tensor) else distances)
        if values.dim() == 1:
            values = values.unsqueeze(0)
        if values.dim() != 2 or values.shape[-1] != self.num_anchors:
            raise ValueError(f"expected distances [num_nodes, {self.num_anchors}], got {list(values.shape)}")
        return values.to(device=param.device, dtype=param.dtype)

    def normalize(self, distances: Any) -> torch.Tensor:
        """Hops -> ``[0, 1]``: ``min(d, D + 1) / (D + 1)`` with ``D = max_distance``; unreachable -> 1."""
        values = self._as_tensor(distances)
        cap = float(self.max_distance + 1)
        far = ~torch.isfinite(values) | (values < 0) | (values > cap)
        return torch.where(far, torch.ones_like(values), values / cap)

    def embed(self, distances: Any) -> torch.Tensor:
        """Position embeddings ``p_v`` ``[N, embed_dim]``: what the rank-preserving objective shapes."""
        return self.encoder(self.normalize(distances))

    def forward(self, distances: Any) -> torch.Tensor:
        """Soft tokens ``[N, tokens_per_node, hidden_size]``, ready for an embeddings segment of a Plan."""
        tokens = self.projector(self.embed(distances))
        return tokens.view(-1, self.tokens_per_node, self.hidden_size)

    @torch.no_grad()
    def _heldout_spearman(self, distances: Any, sources: np.ndarray, nodes: np.ndarray,
                          hops: np.ndarray) -> float:
        was_training = self.training
        self.eval()
        gap = torch.linalg.vector_norm(self.embed(distances[sources]) - self.embed(distances[nodes]), dim=-1)
        self.train(was_training)
        return spearman(gap, hops)

    def fit(self, graph: Any, distances: Any, *, steps: int = 300, batch_size: int = 1024, lr: float = 3e-3,
            margin: float = 0.1, num_sources: int = 64, heldout: float = 0.25, seed: int = 0,
            max_pairs: int = 200_000, num_threads: int | None = 1, progress: bool = True) -> FitReport:
        """Pretrain the encoder so that embedding distances rank node pairs like hop distances do.

        ``distances`` are the node features (``anchor_distances(graph, anchors)``, rows in the graph's node order).
        Exact hop distances for supervision come from BFS out of ``num_sources`` random nodes (one bit-parallel
        pass per 64); a ``heldout`` share of those sources is never trained on, and the Spearman correlation between
        ``|p_s - p_v|`` and ``d_G(s, v)`` over their pairs is measured before and after. Each step samples
        ``batch_size`` triplets ``(s, v, w)`` with ``d_G(s, v) < d_G(s, w)`` (unreachable counts as farthest) and
        takes an Adam step on :func:`rank_margin_loss`. Only the encoder trains; the projector is left alone.
        ``num_threads`` (default 1, restored afterwards): steps this small run fastest on one thread, and torch's
        spinning OpenMP workers make them many times slower on a shared machine; ``None`` leaves torch's setting.
        """
        previous = torch.get_num_threads()
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        try:
            return self._fit(graph, distances, steps=steps, batch_size=batch_size, lr=lr, margin=margin,
                             num_sources=num_sources, heldout=heldout, seed=seed, max_pairs=max_pairs,
                             progress=progress)
        finally:
            torch.set_num_threads(previous)

    def _fit(self, graph: Any, distances: Any, *, steps: int, batch_size: int, lr: float, margin: float,
             num_sources: int, heldout: float, seed: int, max_pairs: int, progress: bool) -> FitReport:
        from tqdm.auto import tqdm

        g = as_graph(graph)
        # rows are converted per batch: a float copy of a million-row distance matrix would double its memory
        features = distances if isinstance(distances, torch.Tensor) else np.asarray(distances)
        n = g.num_nodes
        if features.ndim != 2 or features.shape[1] != self.num_anchors:
            raise ValueError(f"expected distances [num_nodes, {self.num_anchors}], got {list(features.shape)}")
        if features.shape[0] != n:
            raise ValueError(f"distances has {features.shape[0]} rows but the graph has {n} nodes")
        if n < 3:
            raise ValueError("fit needs a graph with at least 3 nodes")
        if not 0 < heldout < 1:
            raise ValueError(f"heldout must be in (0, 1), got {heldout!r}")
        rng = np.random.default_rng(seed)
        count = min(n, max(2, num_sources))
        chosen = rng.choice(n, size=count, replace=False)
        split = max(1, int(round(count * heldout)))
        test_sources, train_sources = chosen[:split], chosen[split:]
        if not len(train_sources):
            raise ValueError("too few sources to hold some out: raise num_sources")
        # hop distances from every chosen source to every node; unreachable -> a value past every real distance
        hops = distances_from_index(g, chosen, unreachable=-1).astype(np.int64)
        hops[hops < 0] = n
        train_hops, test_hops = hops[:, split:], hops[:, :split]

        pair_nodes = np.tile(np.arange(n), split)
        pair_sources = np.repeat(test_sources, n)
        pair_hops = test_hops.T.reshape(-1)
        keep = (pair_nodes != pair_sources) & (pair_hops < n)
        if keep.sum() > max_pairs:  # a fixed random subset keeps the measurement cheap on big graphs
            keep[rng.choice(np.flatnonzero(keep), size=int(keep.sum()) - max_pairs, replace=False)] = False
        report = FitReport(heldout_pairs=int(keep.sum()))
        report.spearman_before = self._heldout_spearman(features, pair_sources[keep], pair_nodes[keep], pair_hops[keep])

        optimizer = torch.optim.Adam(self.encoder.parameters(), lr=lr)
        self.train()
        for _ in tqdm(range(steps), desc="NodeTokenizer.fit", disable=not progress):
            column = rng.integers(0, len(train_sources), size=batch_size)
            near = rng.integers(0, n, size=batch_size)
            far = rng.integers(0, n, size=batch_size)
            d_near, d_far = train_hops[near, column], train_hops[far, column]
            swap = d_near > d_far
            near, far = np.where(swap, far, near), np.where(swap, near, far)
            valid = d_near != d_far
            if not valid.any():
                continue
            triplet = np.concatenate([train_sources[column[valid]], near[valid], far[valid]])
            emb_u, emb_v, emb_w = self.embed(features[triplet]).chunk(3)
            loss = rank_margin_loss(emb_u, emb_v, emb_w, margin)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            report.losses.append(float(loss.detach()))
        report.spearman_after = self._heldout_spearman(features, pair_sources[keep], pair_nodes[keep], pair_hops[keep])
        return report
