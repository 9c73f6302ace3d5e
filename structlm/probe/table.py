"""Probe results as a table: F1 per model and layer, as Markdown, JSON and a picture (matplotlib PNG)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["ProbeRow", "ProbeTable"]


@dataclass
class ProbeRow:
    model: str
    layer: int
    precision: float
    recall: float
    f1: float
    snippets: int
    epochs: int


@dataclass
class ProbeTable:
    """F1 per (model, layer): ``to_markdown()``, ``plot(path)``, ``to_json()``; ``best(model)``."""

    rows: list[ProbeRow] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def best(self, model: str | None = None) -> ProbeRow:
        rows = [r for r in self.rows if model is None or r.model == model]
        return max(rows, key=lambda r: r.f1)

    def models(self) -> list[str]:
        return list(dict.fromkeys(r.model for r in self.rows))

    def to_markdown(self) -> str:
        lines = ["| model | layer | precision | recall | F1 | test snippets | epochs |", "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.model} | {r.layer} | {r.precision:.4f} | {r.recall:.4f} | {r.f1:.4f} | {r.snippets} | {r.epochs} |")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"rows": [asdict(r) for r in self.rows], "meta": self.meta}, indent=2)

    def plot(self, path: str | os.PathLike, title: str = "AST-Probe: constituent F1 per layer") -> Path:
        """F1 against layer, one line per model (matplotlib, written to ``path``)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name in self.models():
            rows = sorted((r for r in self.rows if r.model == name), key=lambda r: r.layer)
            ax.plot([r.layer for r in rows], [r.f1 for r in rows], marker="o", label=name)
        ax.set_xticks(sorted({r.layer for r in self.rows}))  # whole layers only
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_ylabel("constituent F1 (mean per snippet)")
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


