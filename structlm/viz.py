"""Pictures of plans: who sees whom, and where every token sits.

Left: the mask — token level for small plans, segment level (with each segment's intra rule on the diagonal)
for large ones. Right: position id against token index, one colour per segment, so parallel segments that
reuse a position range stand out. Needs matplotlib (``pip install structlm[viz]``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from structlm.plan import Plan

__all__ = ["show_plan", "segment_matrix"]


def segment_matrix(plan: "Plan") -> np.ndarray:
    """``[S, S]`` codes: 0 hidden, 1 sees all of it (edge), 2 causal self, 3 bidirectional self."""
    matrix = plan.adjacency.numpy().astype(np.int8)
    for i, segment in enumerate(plan.segments):
        matrix[i, i] = 2 if segment.causal else 3
    return matrix


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError("pictures need matplotlib: pip install 'structlm[viz]'") from error
    return plt


def show_plan(plan: "Plan", path: str | None = None, max_tokens: int = 512, title: str | None = None):
    """Draw the plan; write a PNG when ``path`` is given. Returns the matplotlib figure."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    n, s = len(plan), plan.num_segments
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [1, 1.2]})
    boundaries = plan.offsets.numpy()
    if n <= max_tokens:
        mask = plan.dense_mask("bool")[0, 0].numpy()
        left.imshow(mask, cmap=ListedColormap(["#f4f4f4", "#1f5fa8"]), interpolation="nearest", aspect="auto")
        for b in boundaries[1:-1]:
            left.axhline(b - 0.5, color="#d08020", lw=0.6)
            left.axvline(b - 0.5, color="#d08020", lw=0.6)
        left.set_xlabel("key token")
        left.set_ylabel("query token")
        left.set_title(f"token mask ({n} tokens, blue = attends)")
    else:
        codes = segment_matrix(plan)
        cmap = ListedColormap(["#f4f4f4", "#1f5fa8", "#7fb0e0", "#0b2f5a"])
        left.imshow(codes, cmap=cmap, vmin=0, vmax=3, interpolation="nearest", aspect="auto")
        left.set_xlabel("seen segment")
        left.set_ylabel("viewer segment")
        left.set_title(f"segment visibility ({s} segments; light = causal self, dark = full self)")
    if s <= 24:
        centres = (boundaries[:-1] + boundaries[1:]) / 2 - 0.5 if n <= max_tokens else np.arange(s)
        left.set_yticks(centres)
        left.set_yticklabels(plan.names, fontsize=7)
    positions = plan.position_ids[0].numpy()
    colours = plt.get_cmap("tab20")
    for i, segment in enumerate(plan.segments):
        start, end = boundaries[i], boundaries[i + 1]
        label = f"{segment.name} ({segment.role})" if s <= 12 else None
        right.plot(np.arange(start, end), positions[start:end], ".", ms=3 if n > 200 else 6,
                   color=colours(i % 20), label=label)
    right.set_xlabel("token index (physical order)")
    right.set_ylabel("position id")
    right.set_title("positions")
    if s <= 12:
        right.legend(fontsize=7, loc="upper left")
    fig.suptitle(title or repr(plan), fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
