"""A trainable ranking head for encoders, and a small fine-tuning loop (Uni-Encoder's cross-entropy).

The head is Uni-Encoder's: each candidate's final states mean-pooled over all its tokens, then a linear map to
one logit. The loss is the cross-entropy of the softmax over a plan's candidates against the right one (the
paper adds an MLM loss, left out here). In-batch negatives are built by the front-end
(``structlm.candidates.training_plans(..., in_batch=B)``); this loop takes any ``(plan, gold name)`` pairs.

With ``train_encoder=False`` the encoder is frozen: each plan's pooled states are computed once and only the
head trains (seconds). With ``train_encoder=True`` every step runs the plans with gradients (dense backend).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, Union

import torch

from structlm.errors import PlanError
from structlm.hf.ranking import ranked_names
from structlm.hf.scoring import pooled
from structlm.plan import Plan

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from structlm.hf.model import StructuredLM

__all__ = ["RankingHead", "TrainReport", "fine_tune", "candidate_loss", "group_vectors"]

FORMAT = "structlm.ranking_head"


class RankingHead(torch.nn.Module):
    """``Linear(hidden → 1)`` over pooled candidate states: ``[K, H] -> [K]`` logits."""

    def __init__(self, hidden_size: int, seed: int | None = 0) -> None:
        super().__init__()
        if seed is not None:
            generator = torch.random.fork_rng()
            with generator:
                torch.manual_seed(seed)
                self.linear = torch.nn.Linear(hidden_size, 1)
        else:
            self.linear = torch.nn.Linear(hidden_size, 1)
        self.hidden_size = int(hidden_size)

    @classmethod
    def for_model(cls, lm: "StructuredLM", seed: int | None = 0) -> "RankingHead":
        """A fresh head as wide as the model's hidden states."""
        return cls(int(lm.config.hidden_size), seed=seed)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.linear(vectors.to(self.linear.weight.dtype)).squeeze(-1)

    def save(self, path: str | Path) -> Path:
        """Write the head to one safetensors file (weights plus its width)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(tensors, str(path), metadata={"format": FORMAT, "hidden_size": str(self.hidden_size)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "RankingHead":
        """Read a head written by :meth:`save`; a file of another kind raises ``ValueError``."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such head file: {path}")
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as error:  # safetensors raises its own error types for a malformed file
            raise ValueError(f"{path} is not a ranking head file ({error})") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a ranking head file (format {meta.get('format')!r})")
        head = cls(int(meta["hidden_size"]), seed=None)
        head.load_state_dict(tensors)
        return head.eval()


@dataclass
class TrainReport:
    """Mean loss per epoch, and per step."""

    epoch_losses: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.epoch_losses:
            return "no epochs"
        return (f"loss {self.epoch_losses[0]:.4f} -> {self.epoch_losses[-1]:.4f} over {len(self.epoch_losses)} "
                f"epoch(s)")


def candidate_loss(logits: torch.Tensor, gold: int) -> torch.Tensor:
    """Cross-entropy of the softmax over one plan's candidate logits against the gold index."""
    return torch.nn.functional.cross_entropy(logits[None], torch.tensor([gold], device=logits.device))


Group = Union[Plan, Sequence[Plan]]


def _plans(group: Group) -> list[Plan]:
    return [group] if isinstance(group, Plan) else list(group)


def _gold_index(group: Group, gold: str) -> tuple[list[str], int]:
    names = [name for plan in _plans(group) for name in ranked_names(plan)]
    if gold not in names:
        raise PlanError(f"gold {gold!r} is not a candidate of its plan ({', '.join(names[:5])}, ...)")
    if len(set(names)) != len(names):
        raise PlanError("the plans of one example repeat a candidate name; name the candidates apart")
    return names, names.index(gold)


def group_vectors(lm: "StructuredLM", group: Group, grad: bool = False) -> torch.Tensor:
    """``[K, H]``: the pooled final states of every candidate of one example, plan by plan (one forward each)."""
    vectors = []
    for plan in _plans(group):
        states = lm.forward(plan, backend="dense", logits_for="none", grad=grad).last_hidden_state[0]
        vectors.append(pooled(states, plan, ranked_names(plan)))
    return torch.cat(vectors)


def fine_tune(lm: "StructuredLM", head: RankingHead, plans: Sequence[tuple[Group, str]], epochs: int = 3,
              batch_size: int = 8, lr: float = 1e-3, encoder_lr: float = 2e-5, train_encoder: bool = False,
              seed: int = 0, progress: bool = True) -> TrainReport:
    """Train ``head`` (and with ``train_encoder`` the model) on ``(plan, gold candidate name)`` pairs.

    An example may also be several plans whose candidates together make its candidate set (a cross-encoder's K
    separate passes): ``([plan_1, …, plan_K], gold)``; the softmax runs over all of them.

    AdamW; one step per batch of ``batch_size`` plans (the loss is their mean). The model is left in eval mode
    (no dropout) and, unless ``train_encoder``, untouched.
    """
    from tqdm.auto import tqdm

    if lm.is_decoder:
        raise ValueError("the ranking head is for encoders; a decoder ranks by log-likelihood (rank(lm, plan))")
    if not plans:
        raise ValueError("no training plans")
    targets = [_gold_index(plan, gold) for plan, gold in plans]
    head.train()
    groups = [{"params": head.parameters(), "lr": lr}]
    if train_encoder:
        groups.append({"params": [p for p in lm.model.parameters() if p.requires_grad], "lr": encoder_lr})
    optimizer = torch.optim.AdamW(groups)
    features = None
    if not train_encoder:  # frozen encoder: pool once
        features = [group_vectors(lm, group) for group, _ in plans]
    order = list(range(len(plans)))
    rng = random.Random(seed)
    report = TrainReport()
    bar = tqdm(range(epochs), desc="fine-tune", unit="epoch", disable=not progress, leave=False)
    for _ in bar:
        rng.shuffle(order)
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            losses = []
            for i in batch:
                vectors = features[i] if features is not None else group_vectors(lm, plans[i][0], grad=True)
                losses.append(candidate_loss(head(vectors), targets[i][1]))
            loss = torch.stack(losses).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            report.step_losses.append(loss.item())
            total += loss.item() * len(batch)
        report.epoch_losses.append(total / len(order))
        bar.set_postfix(loss=f"{report.epoch_losses[-1]:.4f}")
    head.eval()
    lm.model.eval()
    return report
