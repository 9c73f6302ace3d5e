"""Seeded random plans with refinements (:func:`mask_case`), and every mask target against the brute-force rule
on one of them: ``mask_function`` (alone and composed with
refinements through and/or), ``dense_mask`` (bool and additive, any rows × columns), ``block_mask`` (several block
sizes; densified from its tables and its tiles classified), ``schedule`` (levels or a real cycle), the segment
prefill masks of the reuse backend, and the JSON round trip."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from structlm import Plan, Segment, and_masks, anchor, or_masks, sliding_window
from structlm.errors import CycleError
from structlm.masks import dense_mask, segment_prefill_mask
from structlm.schedule import schedule
from structlm.testing import brute_force_mask

BLOCK_SIZES = (3, 8, 16, 32, 128)


# --------------------------------------------------------------------------------------------- mask cases
@dataclass
class MaskCase:
    """A random plan and a random refinement (a small and/or tree of windows and anchors, JSON-able)."""

    seed: int
    plan: Plan
    refine: Any  # None | ["window", w, "index" | "positions"] | ["anchor", name] | ["and" | "or", a, b]

    def describe(self) -> str:
        return json.dumps({"refine": self.refine, "plan": json.loads(self.plan.to_json())})


def segment_lengths(rng: random.Random) -> list[int]:
    """Mostly small plans (tens of tokens), and the issue's ranges reached: up to 64 segments, up to 300 tokens
    in a segment, both in one plan now and then (a few long segments among many short ones: ~1–2k tokens)."""
    kind = rng.random()
    if kind < 0.78:
        longest = rng.randint(1, 24)
        return [rng.randint(1, longest) for _ in range(rng.randint(1, 8))]
    if kind < 0.92:
        longest = rng.randint(1, 8)
        return [rng.randint(1, longest) for _ in range(rng.randint(9, 64))]
    if kind < 0.98:
        return [rng.randint(24, 300) for _ in range(rng.randint(1, 6))]
    lengths = [rng.randint(1, 12) for _ in range(rng.randint(40, 64))]
    for i in rng.sample(range(len(lengths)), 3):
        lengths[i] = rng.randint(150, 300)
    return lengths


def _positions(rng: random.Random, length: int, floats: bool) -> dict:
    """Segment keyword arguments for positions: a start, or an explicit vector (int or float)."""
    mode = rng.random()
    if mode < 0.5:
        start = rng.randint(0, 400)
        return {"start": start + 0.5 if floats and rng.random() < 0.5 else start}
    if floats:
        values = [rng.uniform(0, 500) for _ in range(length)]
        return {"positions": torch.tensor(values, dtype=rng.choice([torch.float32, torch.float64]))}
    values = sorted(rng.randint(0, 600) for _ in range(length)) if mode < 0.8 else \
        [rng.randint(0, 600) for _ in range(length)]
    return {"positions": values}


def random_edges(rng: random.Random, names: list[str], acyclic: bool) -> list[tuple[str, str]]:
    density = rng.choice([0.0, 0.1, 0.3, 0.6, 1.0, rng.random()])
    edges = []
    for i, viewer in enumerate(names):
        for j, viewed in enumerate(names):
            if i != j and (j < i or not acyclic) and rng.random() < density:
                edges.append((viewer, viewed))
    return edges


def random_refine(rng: random.Random, plan: Plan, depth: int = 0) -> Any:
    leaf = depth >= 2 or rng.random() < 0.5
    if leaf:
        if rng.random() < 0.6:
            return ["window", rng.choice([1, 2, 3, 7, 16, 50, 400]), rng.choice(["index", "positions"])]
        return ["anchor", rng.choice(plan.names)]
    return [rng.choice(["and", "or"]), random_refine(rng, plan, depth + 1), random_refine(rng, plan, depth + 1)]


def mask_case(seed: int) -> MaskCase:
    """The plan and refinement of ``seed`` (segment counts 1–64, lengths 1–300, any causal flags and edges)."""
    rng = random.Random(seed)
    floats = rng.random() < 0.25
    segments = []
    for i, length in enumerate(segment_lengths(rng)):
        ids = [rng.randint(0, 999) for _ in range(length)]
        segments.append(Segment(f"s{i}", input_ids=ids, causal=rng.random() < 0.6, role=rng.choice("abc"),
                                **_positions(rng, length, floats and rng.random() < 0.7)))
    names = [s.name for s in segments]
    plan = Plan(segments, random_edges(rng, names, acyclic=rng.random() < 0.6))
    refine = None if rng.random() < 0.4 else random_refine(rng, plan)
    return MaskCase(seed, plan, refine)


def refinement(spec: Any, plan: Plan) -> tuple[Callable | None, Callable | None]:
    """(mask function from structlm, independent oracle ``(q, k) -> bool``) of a refinement spec."""
    if spec is None:
        return None, None
    kind = spec[0]
    if kind == "window":
        width, by = spec[1], spec[2]
        if by == "index":
            return sliding_window(width), lambda q, k: (q - k) < width
        pos = plan.position_ids[0]
        return sliding_window(width, position_ids=pos), lambda q, k: (pos[q] - pos[k]) < width
    if kind == "anchor":
        start, end = plan.spans[spec[1]]
        return anchor(plan, spec[1]), lambda q, k: (k >= start) & (k < end) & (q >= 0)
    (fa, oa), (fb, ob) = refinement(spec[1], plan), refinement(spec[2], plan)
    if kind == "and":
        return and_masks(fa, fb), lambda q, k: oa(q, k) & ob(q, k)
    return or_masks(fa, fb), lambda q, k: oa(q, k) | ob(q, k)


def tile_map(num: torch.Tensor, indices: torch.Tensor, blocks: int) -> torch.Tensor:
    """``[rows, blocks]`` bool from a BlockMask table pair: the first ``num[r]`` indices of row r are marked."""
    num, indices = num[0, 0].long(), indices[0, 0].long()
    rows = torch.arange(indices.shape[0])[:, None]
    listed = torch.arange(indices.shape[1])[None, :] < num[:, None]
    out = torch.zeros(indices.shape[0], blocks + 1, dtype=torch.bool)
    out[rows.expand_as(indices)[listed], indices[listed]] = True
    assert int(out.sum()) == int(num.sum()), "a BlockMask row lists a block twice"
    return out[:, :blocks]


def expand(tiles: torch.Tensor, block: int, n: int) -> torch.Tensor:
    return tiles.repeat_interleave(block, 0).repeat_interleave(block, 1)[:n, :n]


def tile_counts(mask: torch.Tensor, block: int) -> torch.Tensor:
    n = mask.shape[0]
    nb = -(-n // block)
    padded = torch.zeros(nb * block, nb * block, dtype=torch.int32)
    padded[:n, :n] = mask
    return padded.reshape(nb, block, nb, block).sum(dim=(1, 3))


def check_block_mask(plan: Plan, expected: torch.Tensor, rule: torch.Tensor, block: int, refine) -> None:
    """Densify the BlockMask from its tables (mask_mod on partial tiles only) and compare; check its tiles."""
    bm = plan.block_mask(block_size=block, mask_mod=refine)
    n = len(plan)
    nb = -(-n // block)
    assert bm.seq_lengths == (n, n) and bm.BLOCK_SIZE == (block, block)
    partial = tile_map(bm.kv_num_blocks, bm.kv_indices, nb)
    full = tile_map(bm.full_kv_num_blocks, bm.full_kv_indices, nb)
    assert not (partial & full).any(), "a tile is both partial and full"
    q, k = torch.arange(n)[:, None], torch.arange(n)[None, :]
    dense = expand(full, block, n) | (expand(partial, block, n) & bm.mask_mod(None, None, q, k))
    assert torch.equal(dense, expected), f"densified BlockMask (block {block}) differs from the rule"
    # the q-side tables are the transposes of the kv-side ones
    assert torch.equal(tile_map(bm.q_num_blocks, bm.q_indices, nb), partial.T)
    assert torch.equal(tile_map(bm.full_q_num_blocks, bm.full_q_indices, nb), full.T)
    counts = tile_counts(rule, block)
    if refine is None:  # classified exactly: full = every element allowed, partial = some
        assert torch.equal(full, counts == block * block), f"full tiles wrong (block {block})"
        assert torch.equal(partial, (counts > 0) & (counts < block * block)), f"partial tiles wrong (block {block})"
    else:  # the refinement may cut any tile: nothing full, every tile the rule touches listed
        assert not full.any() and torch.equal(partial, counts > 0), f"refined tiles wrong (block {block})"


def check_schedule(plan: Plan) -> None:
    """Levels where a segment sees only earlier levels and sits one above the highest it sees, or a real cycle."""
    adjacency = plan.adjacency.numpy()
    s = adjacency.shape[0]
    reach = adjacency.copy()
    for _ in range(max(1, int(np.ceil(np.log2(max(s, 2)))) + 1)):  # transitive closure by squaring
        reach = reach | ((reach.astype(np.int32) @ reach.astype(np.int32)) > 0)
    cyclic = bool(np.diag(reach).any())
    names = plan.names
    try:
        levels = schedule(plan)
    except CycleError as error:
        assert cyclic, "schedule reports a cycle in an acyclic plan"
        cycle = error.cycle
        assert len(cycle) >= 3 and cycle[0] == cycle[-1], f"not a cycle: {cycle}"
        for viewer, viewed in zip(cycle, cycle[1:]):
            assert viewed in plan.sees(viewer), f"{viewer} -> {viewed} in the reported cycle is not an edge"
        return
    assert not cyclic, "schedule returned levels for a cyclic plan"
    level = {name: i for i, names_at in enumerate(levels) for name in names_at}
    assert sorted(level) == sorted(names) and sum(map(len, levels)) == len(names)
    for name in names:
        seen = [level[v] for v in plan.sees(name)]
        assert level[name] == (1 + max(seen) if seen else 0), f"level of {name}"
    for names_at in levels:
        assert names_at == [n for n in names if n in names_at], "plan order within a level"


def check_mask_case(seed: int) -> None:
    case = mask_case(seed)
    plan, rng = case.plan, random.Random(seed ^ 0x5EED)
    n = len(plan)
    rule = brute_force_mask(plan)
    q, k = torch.arange(n)[:, None], torch.arange(n)[None, :]
    fn = plan.mask_function()
    assert torch.equal(fn(None, None, q, k), rule), "mask_function differs from the rule"
    refine, oracle = refinement(case.refine, plan)
    expected = rule if refine is None else rule & oracle(q, k)
    if refine is not None:
        assert torch.equal(and_masks(fn, refine)(None, None, q, k), expected), "and_masks(rule, refinement)"
        assert torch.equal(or_masks(fn, refine)(None, None, q, k), rule | oracle(q, k)), "or_masks(rule, refinement)"
    # dense, both kinds
    got = dense_mask(plan, "bool", refine=refine)
    assert got.shape == (1, 1, n, n) and got.dtype == torch.bool and torch.equal(got[0, 0], expected), "dense bool"
    dtype = rng.choice([torch.float32, torch.float16, torch.bfloat16])
    additive = dense_mask(plan, "additive", dtype=dtype, refine=refine)[0, 0]
    assert additive.dtype == dtype and torch.equal(additive == 0, expected), "dense additive: zeros"
    assert bool((additive[~expected] == torch.finfo(dtype).min).all()), "dense additive: finfo.min"
    # any rows x columns (a range of rows, an index vector of columns in any order)
    a = rng.randrange(n)
    b = rng.randint(a + 1, n)
    cols = torch.tensor(rng.sample(range(n), rng.randint(1, n)))
    part = dense_mask(plan, rows=(a, b), cols=cols, refine=refine)[0, 0]
    assert torch.equal(part, expected[a:b][:, cols]), "dense rows x cols"
    # BlockMask at two block sizes
    for block in rng.sample(BLOCK_SIZES, 2):
        check_block_mask(plan, expected, rule, block, refine)
    check_schedule(plan)
    # the reuse backend's per-segment masks: a segment's rows over what it sees, then itself
    spans = plan.spans
    for name in rng.sample(plan.names, min(4, len(plan.names))):
        seen = plan.sees(name)
        own = torch.arange(*spans[name])
        seen_cols = torch.cat([torch.arange(*spans[s]) for s in seen] + [own])
        got = segment_prefill_mask(plan, name, seen)[0, 0]
        assert torch.equal(got, rule[own][:, seen_cols]), f"segment_prefill_mask({name})"
        outside = torch.ones(n, dtype=torch.bool)
        outside[seen_cols] = False
        assert not rule[own][:, outside].any(), f"{name} sees tokens outside what it sees"
    # JSON round trip keeps the rule
    back = Plan.from_json(plan.to_json())
    assert back == plan and torch.equal(brute_force_mask(back), rule), "JSON round trip"
    assert torch.equal(back.position_ids, plan.position_ids), "JSON round trip: positions"
