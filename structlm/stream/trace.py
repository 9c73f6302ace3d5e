"""A stream's read/write trace as text and as a picture: what had been read when each piece was written.

The picture is the usual simultaneous-translation staircase: source chunks read along x, target chunks written
along y, one step per action; the diagonal ``wait-k`` line is drawn for comparison. Needs matplotlib (imported
only when a picture is asked for).
"""
from __future__ import annotations

from typing import Sequence

from structlm.stream.policy import READ, WRITE

__all__ = ["trace_rows", "trace_text", "show_trace"]


def trace_rows(steps: Sequence[str], source: Sequence[str], target: Sequence[str]) -> list[tuple[int, str, str]]:
    """Per write: ``(chunks read before it, the source read since the previous write, the piece written)``."""
    rows, n_read, since = [], 0, []
    writes = iter(target)
    for step in steps:
        if step == READ:
            since.append(source[n_read] if n_read < len(source) else "")
            n_read += 1
        elif step == WRITE:
            rows.append((n_read, _joined(since), next(writes, "")))
            since = []
        else:
            raise ValueError(f"a trace holds 'read' / 'write' steps, got {step!r}")
    return rows


def _joined(pieces: Sequence[str]) -> str:
    """Pieces of text in order, a space put between two that do not bring their own (word-level tokenizers)."""
    out = ""
    for piece in pieces:
        if out and piece and not out[-1].isspace() and not piece[0].isspace():
            out += " "
        out += piece
    return out


def trace_text(steps: Sequence[str], source: Sequence[str], target: Sequence[str], width: int = 48) -> str:
    """A table: reads so far | newly read source | written piece, one line per write."""
    lines = [f"{'read':>4}  {'new source':<{width}}  written"]
    for n_read, new, piece in trace_rows(steps, source, target):
        new = new.replace("\n", " ").strip()
        new = new if len(new) <= width else "…" + new[-(width - 1):]
        lines.append(f"{n_read:>4}  {new:<{width}}  {piece.strip()!r}")
    return "\n".join(lines)


def show_trace(steps: Sequence[str], source: Sequence[str] | None = None, target: Sequence[str] | None = None,
               path: str | None = None, k: int | None = None, title: str | None = None, max_labels: int = 40):
    """Draw the staircase of ``steps``; label the axes with ``source`` / ``target`` chunks when few enough.

    ``k`` draws the wait-k diagonal. Writes a PNG when ``path`` is given; returns the matplotlib figure.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError("pictures need matplotlib: pip install 'structlm[viz]'") from error
    xs, ys, n_read, n_written = [0], [0], 0, 0
    for step in steps:
        if step == READ:
            n_read += 1
        elif step == WRITE:
            n_written += 1
        else:
            raise ValueError(f"a trace holds 'read' / 'write' steps, got {step!r}")
        xs.append(n_read)
        ys.append(n_written)
    fig, ax = plt.subplots(figsize=(max(4.0, min(14.0, 0.3 * n_read + 3)), max(3.0, min(10.0, 0.3 * n_written + 2))))
    ax.step(xs, ys, where="post", color="tab:blue", label="trace")
    points = [(x, y) for (x, y), step in zip(zip(xs[1:], ys[1:]), steps) if step == WRITE]
    if points:
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=12, color="tab:blue", zorder=3)
    if k is not None:
        end = max(k - 1, min(n_written + k - 1, n_read))  # the diagonal stops where the source does
        ax.plot([k - 1, end], [0, end - k + 1], "--", color="tab:gray", label=f"wait-{k}")
    if source is not None and len(source) <= max_labels:
        ax.set_xticks(range(1, len(source) + 1))
        ax.set_xticklabels([s.strip() for s in source], rotation=70, fontsize=7)
    if target is not None and len(target) <= max_labels:
        ax.set_yticks(range(1, len(target) + 1))
        ax.set_yticklabels([t.strip() for t in target], fontsize=7)
    ax.set_xlabel("source chunks read")
    ax.set_ylabel("target chunks written")
    ax.set_title(title or f"read/write trace ({n_read} reads, {n_written} writes)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
