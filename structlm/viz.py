"""Pictures: who sees whom in a plan, where every token sits, and a graph's anchors.

* :func:`show_plan` — three panels: the segment-level mask (every plan, with each segment's intra rule on the
  diagonal), the token-level mask (small plans), and position id against token index (parallel segments that
  reuse a position range stand out). Any plan works, whichever front-end built it — a Uni-Encoder arrow mask, a
  Graph-KV round layout, a stream.
* :func:`show_graph` — a graph with its anchors marked and every node coloured by its hop distance to the
  nearest anchor, beside the node × anchor distance matrix (a histogram instead of the drawing for big graphs).

A core module: it reads plans and plain arrays, never a front-end. Needs matplotlib
(``pip install structlm[viz]``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from structlm.plan import Plan

__all__ = ["show_plan", "show_graph", "segment_matrix", "nearest_distances"]

#: Colours of :func:`segment_matrix` codes: hidden, sees all of it (edge), causal self, bidirectional self.
CODE_COLOURS = ("#f4f4f4", "#1f5fa8", "#9cc3e6", "#0b2f5a")
CODE_NAMES = ("hidden", "sees (edge)", "own segment, causal", "own segment, bidirectional")


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


def _label_axis(axis, setter: str, centres, labels, limit: int = 32) -> None:
    """Segment names as ticks; past ``limit`` segments only every k-th name, so the labels stay legible."""
    step = max(1, int(np.ceil(len(labels) / limit)))
    getattr(axis, f"set_{setter}ticks")(list(centres)[::step])
    short = [label if len(label) <= 16 else label[:15] + "…" for label in list(labels)[::step]]
    getattr(axis, f"set_{setter}ticklabels")(short, fontsize=6 if len(labels) > 12 else 7,
                                             rotation=90 if setter == "x" else 0)


def _segment_panel(ax, plan: "Plan", plt) -> list:
    """The segment-level mask; returns the legend handles for the codes it uses."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    codes = segment_matrix(plan)
    ax.imshow(codes, cmap=ListedColormap(CODE_COLOURS), vmin=0, vmax=3, interpolation="nearest")
    s = plan.num_segments
    if s <= 40:  # grid lines between cells
        ax.set_xticks(np.arange(-0.5, s, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, s, 1), minor=True)
        ax.grid(which="minor", color="white", lw=0.8)
        ax.tick_params(which="minor", length=0)
    _label_axis(ax, "y", range(s), plan.names)
    _label_axis(ax, "x", range(s), plan.names)
    ax.set_xlabel("seen segment")
    ax.set_ylabel("viewer segment")
    ax.set_title(f"segment visibility ({s} segments)", fontsize=9)
    used = sorted(set(np.unique(codes).tolist()))
    return [Patch(facecolor=CODE_COLOURS[c], edgecolor="#999999", label=CODE_NAMES[c]) for c in used]


def _token_panel(ax, plan: "Plan", boundaries: np.ndarray) -> None:
    from matplotlib.colors import ListedColormap

    n = len(plan)
    mask = plan.dense_mask("bool")[0, 0].numpy()
    ax.imshow(mask, cmap=ListedColormap(["#f4f4f4", "#1f5fa8"]), vmin=0, vmax=1, interpolation="nearest")
    if plan.num_segments <= 24:  # segment boundaries; past that they would hide the mask
        for b in boundaries[1:-1]:
            ax.axhline(b - 0.5, color="#d08020", lw=0.6)
            ax.axvline(b - 0.5, color="#d08020", lw=0.6)
    centres = (boundaries[:-1] + boundaries[1:]) / 2 - 0.5
    _label_axis(ax, "y", centres, plan.names, limit=24)
    ax.set_xlabel("key token")
    ax.set_ylabel("query token (segment)")
    ax.set_title(f"token mask ({n} tokens; blue = attends)", fontsize=9)


def _positions_panel(ax, plan: "Plan", boundaries: np.ndarray, plt) -> None:
    n, s = len(plan), plan.num_segments
    positions = plan.position_ids[0].numpy()
    by_segment = s <= 12
    roles = list(dict.fromkeys(segment.role for segment in plan.segments))
    colours = plt.get_cmap("tab10" if (s if by_segment else len(roles)) <= 10 else "tab20")
    seen_roles: set[str] = set()
    for i, segment in enumerate(plan.segments):
        start, end = boundaries[i], boundaries[i + 1]
        colour = colours(i % colours.N) if by_segment else colours(roles.index(segment.role) % colours.N)
        if by_segment:
            label = f"{segment.name} ({segment.role}{', soft' if segment.is_soft else ''})"
        else:
            label = segment.role if segment.role not in seen_roles else None
            seen_roles.add(segment.role)
        xs = np.arange(start, end)
        single = end - start == 1
        ax.plot(xs, positions[start:end], color=colour, lw=1.6, ms=5 if single else 3, label=label,
                marker="o" if single else ("." if n <= 200 else None))
    ax.set_xlabel("token index (physical order)")
    ax.set_ylabel("position id")
    ax.set_title(f"positions (0 .. {positions.max():g})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", title=None if by_segment else "role", title_fontsize=6)


def show_plan(plan: "Plan", path: str | None = None, max_tokens: int = 512, title: str | None = None):
    """Draw the plan; write a PNG when ``path`` is given. Returns the matplotlib figure.

    Panels: segment-level visibility (always), the token-level mask (when the plan has at most ``max_tokens``
    tokens) and positions. ``fig.axes[0]`` is the segment panel.
    """
    plt = _pyplot()
    if not plan.num_segments:
        raise ValueError("the plan has no segments: nothing to draw")
    n = len(plan)
    token_level = n <= max_tokens
    widths = [1, 1.15, 1.25] if token_level else [1, 1.3]
    fig, axes = plt.subplots(1, len(widths), figsize=(5.2 * len(widths), 6.2), gridspec_kw={"width_ratios": widths})
    boundaries = plan.offsets.numpy()
    handles = _segment_panel(axes[0], plan, plt)
    if token_level:
        _token_panel(axes[1], plan, boundaries)
    _positions_panel(axes[-1], plan, boundaries, plt)
    note = "" if token_level else f"  (token mask not drawn: {n} tokens > max_tokens={max_tokens})"
    fig.suptitle((title or repr(plan)) + note, fontsize=10, y=0.985)
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.945), ncol=len(handles), fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return fig


def nearest_distances(distances: np.ndarray) -> np.ndarray:
    """Per node, the hop distance to its nearest anchor; -1 when no anchor is reachable (negative = unreachable)."""
    values = np.asarray(distances, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"distances must be [nodes, anchors], got shape {values.shape}")
    reachable = np.where(values >= 0, values, np.inf)
    nearest = reachable.min(axis=1) if values.shape[1] else np.full(len(values), np.inf)
    return np.where(np.isfinite(nearest), nearest, -1).astype(np.int64)


def _steps(plt, count: int, low: float, high: float):
    """``count`` discrete colours of one sequential map (one per hop count)."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(plt.get_cmap("GnBu")(np.linspace(low, high, count)))


def show_graph(graph: Any, anchors: Sequence, distances: np.ndarray, path: str | None = None,
               radius: int | None = None, max_draw: int = 400, title: str | None = None, seed: int = 0):
    """A networkx graph with its anchors, nodes coloured by hops to the nearest anchor, and the distance matrix.

    ``distances`` is ``[nodes, anchors]`` in ``graph.nodes()`` order (``structlm.graph.anchor_distances``),
    negative where unreachable. Graphs with more than ``max_draw`` nodes get a histogram of nearest-anchor
    distances instead of a drawing (a layout of 10^5 nodes says nothing and takes minutes).
    """
    plt = _pyplot()
    import networkx as nx

    nodes = list(graph.nodes())
    distances = np.asarray(distances)
    if distances.shape[0] != len(nodes):
        raise ValueError(f"distances has {distances.shape[0]} rows but the graph has {len(nodes)} nodes")
    anchors = list(anchors)
    nearest = nearest_distances(distances)
    top = max(int(nearest.max()), 1)
    cmap = _steps(plt, top + 1, 0.15, 0.7)  # light to medium: black labels stay legible
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 5.6), gridspec_kw={"width_ratios": [1.3, 1]})
    chosen = set(anchors)
    ball = f" radius {radius}," if radius is not None else ""
    if len(nodes) <= max_draw:
        layout = nx.spring_layout(graph, seed=seed)
        others = [v for v in nodes if v not in chosen]
        index = {v: i for i, v in enumerate(nodes)}
        nx.draw_networkx_edges(graph, layout, ax=left, edge_color="#c8c8c8", width=0.7,
                               arrows=graph.is_directed())
        unreachable = [v for v in others if nearest[index[v]] < 0]
        reached = [v for v in others if nearest[index[v]] >= 0]
        drawn = nx.draw_networkx_nodes(graph, layout, nodelist=reached, ax=left, node_size=110,
                                       node_color=[nearest[index[v]] for v in reached], cmap=cmap,
                                       vmin=-0.5, vmax=top + 0.5)
        if unreachable:
            nx.draw_networkx_nodes(graph, layout, nodelist=unreachable, ax=left, node_size=110, node_color="#ffffff",
                                   edgecolors="#d04040", label="no anchor reachable")
        nx.draw_networkx_nodes(graph, layout, nodelist=anchors, ax=left, node_size=300, node_color="#e07b20",
                               node_shape="*", edgecolors="#7a3d00", label="anchor")
        if len(nodes) <= 80:
            nx.draw_networkx_labels(graph, layout, ax=left, font_size=6)
        if drawn is not None:
            fig.colorbar(drawn, ax=left, ticks=range(top + 1), label="hops to the nearest anchor", shrink=0.8)
        left.legend(loc="lower left", fontsize=7, frameon=False)
        noun = "anchor" if len(anchors) == 1 else "anchors"
        left.set_title(f"{len(anchors)} {noun} (stars),{ball} {len(nodes)} nodes", fontsize=9)
        left.axis("off")
    else:
        counts = np.bincount(nearest[nearest >= 0], minlength=top + 1)
        left.bar(range(len(counts)), counts, color=[cmap(i) for i in range(len(counts))])
        left.set_xlabel("hops to the nearest anchor")
        left.set_ylabel("nodes")
        left.set_title(f"{len(anchors)} anchors,{ball} {len(nodes)} nodes "
                       f"({int((nearest < 0).sum())} unreachable)", fontsize=9)
    shown = np.where(distances >= 0, distances, np.nan).astype(np.float64)
    deepest = max(int(np.nanmax(shown)) if np.isfinite(shown).any() else 0, 1)
    image = right.imshow(shown, aspect="auto", interpolation="nearest", cmap=_steps(plt, deepest + 1, 0.1, 0.95),
                         vmin=-0.5, vmax=deepest + 0.5)
    if len(anchors) <= 30:
        right.set_xticks(range(len(anchors)), [str(a) for a in anchors], fontsize=6, rotation=90)
    right.set_xlabel("anchor (selection order)")
    right.set_ylabel("node (graph order)")
    right.set_title("hop distance to each anchor (blank = unreachable)", fontsize=9)
    fig.colorbar(image, ax=right, label="hops", ticks=range(0, deepest + 1, max(1, (deepest + 1) // 10)))
    fig.suptitle(title or "NT-LLM anchors and hop distances", fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return fig
