"""Compile a Plan to attention masks: a mask function, dense masks for any rows × columns, a FlexAttention BlockMask.

Every mask the runtime hands a model comes from here (the rule is written once): the whole plan, one segment's
prefill on a cache of exactly what it sees (:func:`segment_prefill_mask`), a padded batch (:func:`batch_mask`),
and generated tokens that see their whole cache (:func:`full_mask`); :func:`formatted` turns any of them into
the form an attention implementation takes (bool for sdpa, additive float for eager).

Also small attention-gym-style factories for token-level refinements (``sliding_window``, ``anchor``) that
compose with ``and_masks`` / ``or_masks``.

Mask functions follow the FlexAttention / transformers convention ``fn(b, h, q_idx, kv_idx) -> bool tensor``
and only gather from small captured tensors with tuple indexing (chained ``t[a][b]`` indexing segfaults in
compiled CPU flex kernels).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from structlm.errors import PlanError

if TYPE_CHECKING:  # pragma: no cover
    from structlm.plan import Plan

MaskFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "MaskFunction",
    "plan_mask_function",
    "dense_mask",
    "block_mask",
    "segment_prefill_mask",
    "causal_chain",
    "chain_continues",
    "batch_mask",
    "full_mask",
    "cache_step_mask",
    "formatted",
    "and_masks",
    "or_masks",
    "sliding_window",
    "anchor",
    "to_additive",
]


# --------------------------------------------------------------------------------------------- mask functions
def plan_mask_function(plan: "Plan", device=None) -> MaskFunction:
    """The plan's visibility rule over token indices, a closure over ``[N]`` and ``[S, S]`` tensors."""
    segment_ids = plan.segment_ids.to(device)
    causal = plan.causal_flags.to(device)
    # sees[i, j]: segment i sees all of segment j (edges); the diagonal is handled by the intra rule.
    sees = plan.adjacency.to(device)

    def plan_mask(b, h, q_idx, kv_idx):
        q_seg = segment_ids[q_idx]
        kv_seg = segment_ids[kv_idx]
        same = q_seg == kv_seg
        intra = same & ((kv_idx <= q_idx) | ~causal[q_seg])
        return intra | sees[q_seg, kv_seg]

    plan_mask.__name__ = f"plan_mask_{plan.num_segments}seg"
    return plan_mask


def and_masks(*fns: MaskFunction) -> MaskFunction:
    """A token is visible when every function allows it."""
    if not fns:
        raise ValueError("and_masks needs at least one mask function")

    def and_mask(b, h, q_idx, kv_idx):
        result = fns[0](b, h, q_idx, kv_idx)
        for fn in fns[1:]:
            result = result & fn(b, h, q_idx, kv_idx)
        return result

    and_mask.__name__ = "and_" + "_".join(getattr(f, "__name__", "fn") for f in fns)
    return and_mask


def or_masks(*fns: MaskFunction) -> MaskFunction:
    """A token is visible when any function allows it."""
    if not fns:
        raise ValueError("or_masks needs at least one mask function")

    def or_mask(b, h, q_idx, kv_idx):
        result = fns[0](b, h, q_idx, kv_idx)
        for fn in fns[1:]:
            result = result | fn(b, h, q_idx, kv_idx)
        return result

    or_mask.__name__ = "or_" + "_".join(getattr(f, "__name__", "fn") for f in fns)
    return or_mask


def sliding_window(window: int, position_ids: torch.Tensor | None = None) -> MaskFunction:
    """Keys at most ``window - 1`` steps back: by token index, or by plan position when ``position_ids`` is given.

    With positions, parallel segments that reuse a position range are windowed by logical distance, as a model
    with a sliding-window layer would see them.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if position_ids is None:

        def window_mask(b, h, q_idx, kv_idx):
            return (q_idx - kv_idx) < window

    else:
        pos = torch.as_tensor(position_ids).reshape(-1)

        def window_mask(b, h, q_idx, kv_idx):
            return (pos[q_idx] - pos[kv_idx]) < window

    window_mask.__name__ = f"sliding_window_{window}"
    return window_mask


def anchor(plan: "Plan", name: str) -> MaskFunction:
    """Every token sees the tokens of segment ``name`` (an attention sink / shared instruction)."""
    start, end = plan.spans[name] if name in plan else (None, None)
    if start is None:
        raise PlanError(f"anchor names unknown segment {name!r} (known: {', '.join(plan.names)})")

    def anchor_mask(b, h, q_idx, kv_idx):
        return (kv_idx >= start) & (kv_idx < end)

    anchor_mask.__name__ = f"anchor_{name}"
    return anchor_mask


# --------------------------------------------------------------------------------------------- dense
def to_additive(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Bool (True = attend) → additive float, 0 where allowed and ``finfo(dtype).min`` elsewhere."""
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=mask.device)
    return torch.where(mask, zero, blocked)


def formatted(mask: torch.Tensor, kind: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A bool mask (True = attend) in the form ``kind`` asks: ``"bool"`` as it is, ``"additive"`` 0 / finfo.min."""
    if kind == "bool":
        return mask
    if kind == "additive":
        return to_additive(mask, dtype)
    raise ValueError(f"kind must be 'bool' or 'additive', got {kind!r}")


def _indices(selection, n: int, device) -> torch.Tensor:
    if selection is None:
        return torch.arange(n, device=device)
    if isinstance(selection, tuple):
        return torch.arange(*selection, device=device)
    return torch.as_tensor(selection, dtype=torch.long, device=device)


def dense_mask(
    plan: "Plan",
    kind: str = "bool",
    dtype: torch.dtype = torch.float32,
    device=None,
    refine: MaskFunction | None = None,
    rows: tuple[int, int] | torch.Tensor | None = None,
    cols: tuple[int, int] | torch.Tensor | None = None,
) -> torch.Tensor:
    """``[1, 1, q, k]`` mask for the plan: ``rows`` / ``cols`` pick query / key tokens (a ``(start, end)`` range or
    an index vector, in the order the model sees them; default all N).

    ``kind="bool"`` (True = attend) suits sdpa; ``kind="additive"`` (0 / finfo.min) suits eager attention —
    never hand a bool mask to eager attention: transformers adds it to the scores silently.
    """
    if kind not in ("bool", "additive"):
        raise ValueError(f"kind must be 'bool' or 'additive', got {kind!r}")
    n = len(plan)
    q_idx = _indices(rows, n, device)[:, None]
    kv_idx = _indices(cols, n, device)[None, :]
    fn = plan_mask_function(plan, device=device)
    if refine is not None:
        fn = and_masks(fn, refine)
    mask = fn(None, None, q_idx, kv_idx)[None, None]
    return formatted(mask, kind, dtype)


def segment_prefill_mask(plan: "Plan", name: str, seen: Sequence[str], kind: str = "bool",
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[1, 1, L, past + L]``: segment ``name``'s rows over a cache holding the ``seen`` segments, then itself.

    What one step of the KV-reuse schedule passes to the model (keys in cache order: seen segments, own tokens).
    """
    spans = plan.spans
    own = torch.arange(*spans[name])
    cols = torch.cat([torch.arange(*spans[s]) for s in seen] + [own])
    return dense_mask(plan, kind, dtype, rows=own, cols=cols)


def causal_chain(plan: "Plan", names: Sequence[str]) -> bool:
    """Whether the segments ``names`` (consecutive in the plan, in order) form one ordinary causal prompt: each is
    causal, sees exactly the ones before it in ``names`` (the first sees nothing), and positions run on by one.

    Their mask over themselves is then exactly lower-triangular, and their positions a plain range: the model's
    own causal attention with no mask computes it (what a plain prefill does).
    """
    return all(chain_continues(plan, names[:i], name) for i, name in enumerate(names))


def chain_continues(plan: "Plan", run: Sequence[str], name: str) -> bool:
    """Whether segment ``name`` extends the :func:`causal_chain` ``run`` (checked one link at a time, so a run of
    m segments costs what their visible sets cost, not m times that)."""
    segment = plan[name]
    positions = segment.positions
    if not segment.causal or not len(positions) or positions.is_floating_point():
        return False
    if not bool((positions.diff() == 1).all()):
        return False
    if set(plan.sees(name)) != set(run):
        return False
    if not run:
        return True
    last = plan[run[-1]]
    return plan.spans[run[-1]][1] == plan.spans[name][0] and int(positions[0]) == int(last.positions[-1]) + 1


def batch_mask(plans: Sequence["Plan"], length: int | None = None, kind: str = "bool",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[B, 1, T, T]`` masks of plans padded to ``T`` tokens: padding sees only itself (no empty softmax row) and
    no real token sees padding."""
    length = max(len(p) for p in plans) if length is None else length
    masks = []
    for plan in plans:
        n = len(plan)
        mask = torch.eye(length, dtype=torch.bool)
        mask[:n, :n] = dense_mask(plan)[0, 0]
        mask[:n, n:] = False
        masks.append(mask)
    return formatted(torch.stack(masks)[:, None], kind, dtype)


def full_mask(rows: int, cols: int, kind: str = "bool", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[1, 1, rows, cols]`` all visible: generated tokens over a cache that holds exactly what they see."""
    return formatted(torch.ones(1, 1, rows, cols, dtype=torch.bool), kind, dtype)


def cache_step_mask(visible: torch.Tensor, new: int, kind: str = "bool",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[1, 1, new, past + new]``: ``new`` tokens over a cache whose slot ``c`` they see iff ``visible[c]``,
    causal among themselves — one step of a stream whose cache holds two position groups (a read sees only the
    source slots, a write every slot)."""
    own = torch.ones(new, new, dtype=torch.bool).tril()
    mask = torch.cat([visible.to(torch.bool)[None].expand(new, -1), own], dim=1)
    return formatted(mask[None, None], kind, dtype)


# --------------------------------------------------------------------------------------------- block mask
def _allowed_rectangles(plan: "Plan") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint token rectangles whose union is the plan's mask.

    Returns row starts/ends, column starts/ends, and a flag for causal self-rectangles (lower triangle only).
    Each (viewer, viewed) segment pair contributes one rectangle, so they never overlap.
    """
    offsets = plan.offsets.numpy()
    causal = plan.causal_flags.numpy()
    adjacency = plan.adjacency.numpy()
    viewers, viewed = np.nonzero(adjacency)
    selves = np.arange(plan.num_segments)
    rows = np.concatenate([selves, viewers])
    cols = np.concatenate([selves, viewed])
    triangle = np.concatenate([causal, np.zeros(len(viewers), dtype=bool)])
    return offsets[rows], offsets[rows + 1], offsets[cols], offsets[cols + 1], triangle


def _block_counts(plan: "Plan", block_size: int) -> np.ndarray:
    """Allowed-element count of every (query block, key block) tile, from segment ranges alone."""
    n = len(plan)
    nb = (n + block_size - 1) // block_size
    r0, r1, c0, c1, tri = _allowed_rectangles(plan)
    rb0, rb1 = r0 // block_size, (r1 - 1) // block_size
    cb0, cb1 = c0 // block_size, (c1 - 1) // block_size
    nr, nc = rb1 - rb0 + 1, cb1 - cb0 + 1
    # enumerate the tiles each rectangle touches (vectorised: repeat per rectangle, then offsets within it)
    per_rect = nr * nc
    rect = np.repeat(np.arange(len(r0)), per_rect)
    local = np.arange(per_rect.sum()) - np.repeat(np.cumsum(per_rect) - per_rect, per_rect)
    bi = rb0[rect] + local // nc[rect]
    bj = cb0[rect] + local % nc[rect]
    # overlap of the rectangle with the tile, per axis
    row_lo = np.maximum(r0[rect], bi * block_size)
    row_hi = np.minimum(r1[rect], (bi + 1) * block_size)
    col_lo = np.maximum(c0[rect], bj * block_size)
    col_hi = np.minimum(c1[rect], (bj + 1) * block_size)
    count = (row_hi - row_lo) * (col_hi - col_lo)
    is_tri = tri[rect]
    if is_tri.any():
        # causal self-rectangles: rows and columns span the same tokens. Tiles above the diagonal hold nothing,
        # tiles below it are full rectangles, and the diagonal tile holds the lower triangle with its diagonal.
        m = row_hi - row_lo
        count = np.where(is_tri & (bi < bj), 0, count)
        count = np.where(is_tri & (bi == bj), m * (m + 1) // 2, count)
    counts = np.bincount(bi * nb + bj, weights=count, minlength=nb * nb).astype(np.int64)
    return counts.reshape(nb, nb)


def _ordered(dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the number of marked columns, and their indices first (ascending), as create_block_mask orders them."""
    num = dense.sum(-1, dtype=torch.int32)
    indices = torch.argsort(dense.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
    return num, indices


def block_mask(plan: "Plan", block_size: int = 128, device=None, refine: MaskFunction | None = None):
    """A FlexAttention ``BlockMask`` whose tiles are classified empty / partial / full from segment ranges.

    No N x N tensor is built: the cost is O(tiles touched by segment pairs) plus O((N / block_size)^2).
    With a ``refine`` mask function, tiles that the plan fills become partial (the refinement may cut them).
    """
    from torch.nn.attention.flex_attention import BlockMask

    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    plan._require_segments()
    n = len(plan)
    counts_t = torch.from_numpy(_block_counts(plan, block_size))
    nonempty = counts_t > 0
    if refine is None:
        # A ragged last tile is never full (its padding is masked), as create_block_mask classifies it.
        full = counts_t == block_size * block_size
    else:
        full = torch.zeros_like(nonempty)
    partial = nonempty & ~full
    kv_num, kv_idx = _ordered(partial)
    full_num, full_idx = _ordered(full)
    q_num, q_idx = _ordered(partial.T.contiguous())
    full_q_num, full_q_idx = _ordered(full.T.contiguous())
    fn = plan_mask_function(plan, device=device)
    if refine is not None:
        fn = and_masks(fn, refine)

    def expand(t):
        return t[None, None].contiguous().to(device) if device is not None else t[None, None].contiguous()

    return BlockMask(
        seq_lengths=(n, n),
        kv_num_blocks=expand(kv_num),
        kv_indices=expand(kv_idx),
        full_kv_num_blocks=expand(full_num),
        full_kv_indices=expand(full_idx),
        q_num_blocks=expand(q_num),
        q_indices=expand(q_idx),
        full_q_num_blocks=expand(full_q_num),
        full_q_indices=expand(full_q_idx),
        BLOCK_SIZE=(block_size, block_size),
        mask_mod=fn,
    )
