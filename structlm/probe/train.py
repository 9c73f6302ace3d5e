"""AST-Probe (Hernández López et al., ASE 2022): is the syntax tree linearly recoverable from hidden states?

A probe projects each code token's hidden vector (sub-words mean-pooled) into a small syntactic subspace
(rank ~128). Squared distances between consecutive projected tokens must rank like the tree's ``d``;
their differences classify ``c``; the projected vectors classify ``u``. The model stays frozen: hidden
states are computed once per snippet, then one probe is trained per layer (Adam 1e-3, plateau decay x0.1,
at most 20 epochs, early stopping with patience 5, best validation checkpoint). Scores are labelled
constituent precision / recall / F1 of the decoded tree, averaged per snippet.

Baselines from the paper: the embedding layer (layer 0) and the same architecture with random weights
(:func:`random_weights_copy`, which keeps the trained embeddings as the paper's CodeBERTrand does).
"""
from __future__ import annotations

import copy
import math
import random
from typing import Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from structlm.code import ASTTuple, constituents, precision_recall_f1, tree_from_tuple
from structlm.code.ast import EMPTY

__all__ = ["ASTProbe", "label_sets", "train_probe", "evaluate_probe", "tuple_constituents"]


# ------------------------------------------------------------------------------------------------ probe
class ASTProbe(nn.Module):
    """The projection ``P`` (hidden -> rank) plus one vector per constituent label and per unary label.

    ``d_hat_i = ||t_i - t_{i-1}||^2``, ``c`` logits ``(t_i - t_{i-1}) . V_c``, ``u`` logits ``t_i . V_u`` with
    ``t = h P``. Parameter count ``hidden*rank + rank*(|C| + |U|)``, initialised U(-0.05, 0.05).
    """

    def __init__(
        self,
        hidden_size: int,
        rank: int = 128,
        *,
        c_labels: Sequence[str],
        u_labels: Sequence[str],
        orthogonality: float = 5.0,
    ) -> None:
        super().__init__()
        self.c_labels = list(c_labels)
        self.u_labels = list(u_labels)
        if EMPTY not in self.u_labels:
            raise ValueError(f"u_labels must contain {EMPTY!r}")
        self.orthogonality = float(orthogonality)
        self.proj = nn.Parameter(torch.empty(hidden_size, rank).uniform_(-0.05, 0.05))
        self.vectors_c = nn.Parameter(torch.empty(rank, len(self.c_labels)).uniform_(-0.05, 0.05))
        self.vectors_u = nn.Parameter(torch.empty(rank, len(self.u_labels)).uniform_(-0.05, 0.05))
        self._c_index = {label: i for i, label in enumerate(self.c_labels)}
        self._u_index = {label: i for i, label in enumerate(self.u_labels)}

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """hidden [B, L, H] -> d_hat [B, L-1], c logits [B, L-1, |C|], u logits [B, L, |U|]."""
        t = hidden @ self.proj
        diff = t[:, 1:] - t[:, :-1]
        return (diff**2).sum(-1), diff @ self.vectors_c, t @ self.vectors_u

    def orthogonality_penalty(self) -> torch.Tensor:
        """``||P^T P - I||_F^2``: keeps the projection close to an orthogonal basis of the subspace."""
        gram = self.proj.T @ self.proj
        return ((gram - torch.eye(gram.shape[0])) ** 2).sum()

    def targets(self, tuples: Sequence[ASTTuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded gold d [B, L-1], c ids [B, L-1], u ids [B, L] (-1 = padding or unknown label), lengths."""
        width = max(len(t.tokens) for t in tuples)
        d = torch.zeros(len(tuples), max(width - 1, 1))
        c = torch.full((len(tuples), max(width - 1, 1)), -1, dtype=torch.long)
        u = torch.full((len(tuples), width), -1, dtype=torch.long)
        lengths = torch.tensor([len(t.tokens) for t in tuples])
        for i, t in enumerate(tuples):
            n = len(t.tokens)
            d[i, : n - 1] = torch.tensor(t.d, dtype=torch.float32)
            c[i, : n - 1] = torch.tensor([self._c_index.get(x, -1) for x in t.c], dtype=torch.long)
            u[i, :n] = torch.tensor([self._u_index.get(x, -1) for x in t.u], dtype=torch.long)
        return d, c, u, lengths

    def loss(self, hidden: torch.Tensor, tuples: Sequence[ASTTuple], with_penalty: bool = True) -> dict[str, torch.Tensor]:
        """Pairwise hinge on d (ordered pairs with d_i > d_j, ties excluded), cross-entropy on c and u,
        plus ``orthogonality * ||P^T P - I||^2`` (training only)."""
        d_hat, c_logits, u_logits = self(hidden)
        d, c, u, lengths = self.targets(tuples)
        valid = torch.arange(d.shape[1])[None, :] < (lengths[:, None] - 1)
        pair = valid[:, :, None] & valid[:, None, :] & (d[:, :, None] > d[:, None, :])
        hinge = torch.relu(1 - (d_hat[:, :, None] - d_hat[:, None, :]))
        loss_d = hinge[pair].mean() if pair.any() else d_hat.sum() * 0
        ce = nn.functional.cross_entropy
        loss_c = ce(c_logits.reshape(-1, c_logits.shape[-1]), c.reshape(-1), ignore_index=-1) if (c >= 0).any() else d_hat.sum() * 0
        loss_u = ce(u_logits.reshape(-1, u_logits.shape[-1]), u.reshape(-1), ignore_index=-1)
        total = loss_d + loss_c + loss_u
        out = {"d": loss_d, "c": loss_c, "u": loss_u}
        if with_penalty and self.orthogonality:
            penalty = self.orthogonality_penalty()
            out["orthogonality"] = penalty
            total = total + self.orthogonality * penalty
        out["total"] = total
        return out

    @torch.no_grad()
    def predict(self, hidden: torch.Tensor) -> tuple[list[float], list[str], list[str]]:
        """Predicted (d, c, u) for one snippet's token vectors [L, H]."""
        d_hat, c_logits, u_logits = self(hidden[None])
        c = [self.c_labels[i] for i in c_logits[0].argmax(-1).tolist()]
        u = [self.u_labels[i] for i in u_logits[0].argmax(-1).tolist()]
        return d_hat[0].tolist(), c, u


def _pad(feats: Sequence[torch.Tensor]) -> torch.Tensor:
    return nn.utils.rnn.pad_sequence(list(feats), batch_first=True)


def _batches(n: int, size: int, generator: random.Random | None) -> list[list[int]]:
    order = list(range(n))
    if generator is not None:
        generator.shuffle(order)
    return [order[i : i + size] for i in range(0, n, size)]


def label_sets(tuples: Iterable[ASTTuple]) -> tuple[list[str], list[str]]:
    """Sorted constituent and unary label vocabularies (``<empty>`` always included in both)."""
    c_set, u_set = {EMPTY}, {EMPTY}
    for t in tuples:
        c_set.update(t.c)
        u_set.update(t.u)
    return sorted(c_set), sorted(u_set)


@torch.no_grad()
def _eval_loss(probe: ASTProbe, feats, tuples, batch_size: int) -> float:
    total, count = 0.0, 0
    for idx in _batches(len(tuples), batch_size, None):
        out = probe.loss(_pad([feats[i] for i in idx]), [tuples[i] for i in idx], with_penalty=False)
        total += out["total"].item() * len(idx)
        count += len(idx)
    return total / max(count, 1)


def train_probe(
    train_feats: Sequence[torch.Tensor],
    train_tuples: Sequence[ASTTuple],
    valid_feats: Sequence[torch.Tensor],
    valid_tuples: Sequence[ASTTuple],
    *,
    c_labels: Sequence[str],
    u_labels: Sequence[str],
    rank: int = 128,
    epochs: int = 20,
    patience: int = 5,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 42,
    progress: bool = True,
    desc: str = "probe",
) -> tuple[ASTProbe, list[dict[str, float]]]:
    """Train one probe as in the paper: Adam, ``ReduceLROnPlateau(factor=0.1, patience=0)`` on the validation
    loss (without the orthogonality term), early stopping after ``patience`` epochs without improvement,
    and the best-validation weights restored. Returns the probe and per-epoch history."""
    if not train_tuples or not valid_tuples:
        raise ValueError("training needs at least one training and one validation snippet")
    torch.manual_seed(seed)
    probe = ASTProbe(train_feats[0].shape[-1], rank, c_labels=c_labels, u_labels=u_labels)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=0)
    shuffler = random.Random(seed)
    best, best_state, waited = math.inf, copy.deepcopy(probe.state_dict()), 0
    history: list[dict[str, float]] = []
    bar = tqdm(range(epochs), desc=desc, disable=not progress, unit="epoch", leave=False)
    for epoch in bar:
        probe.train()
        running, seen = 0.0, 0
        for idx in _batches(len(train_tuples), batch_size, shuffler):
            out = probe.loss(_pad([train_feats[i] for i in idx]), [train_tuples[i] for i in idx])
            optimizer.zero_grad()
            out["total"].backward()
            optimizer.step()
            running += out["total"].item() * len(idx)
            seen += len(idx)
        probe.eval()
        valid = _eval_loss(probe, valid_feats, valid_tuples, batch_size)
        scheduler.step(valid)
        history.append({"epoch": epoch, "train_loss": running / seen, "valid_loss": valid, "lr": optimizer.param_groups[0]["lr"]})
        bar.set_postfix(train=f"{running / seen:.3f}", valid=f"{valid:.3f}")
        if valid < best - 1e-6:
            best, best_state, waited = valid, copy.deepcopy(probe.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    probe.load_state_dict(best_state)
    probe.eval()
    return probe, history


def tuple_constituents(t: ASTTuple):
    """Constituents of the tree a gold tuple encodes (the paper also rebuilds the gold AST from its tuple)."""
    return constituents(tree_from_tuple(t.d, t.c, t.u))


@torch.no_grad()
def evaluate_probe(probe: ASTProbe, feats: Sequence[torch.Tensor], tuples: Sequence[ASTTuple]) -> dict[str, float]:
    """Precision, recall and F1 of the decoded trees, averaged per snippet (macro, as the paper reports)."""
    scores = []
    for h, t in zip(feats, tuples):
        d, c, u = probe.predict(h)
        pred = constituents(tree_from_tuple(d, c, u))
        scores.append(precision_recall_f1(tuple_constituents(t), pred))
    n = max(len(scores), 1)
    return {
        "precision": sum(s[0] for s in scores) / n,
        "recall": sum(s[1] for s in scores) / n,
        "f1": sum(s[2] for s in scores) / n,
        "snippets": len(scores),
    }


