"""Compile targets: every mask equals the brute-force rule; BlockMask tiles equal create_block_mask's."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention.flex_attention import create_block_mask

from structlm import Plan, PlanError, Segment, and_masks, anchor, or_masks, sliding_window
from structlm.masks import block_mask, causal_chain, dense_mask, to_additive
from tests.strategies import brute_force_mask, plans


@settings(max_examples=80, deadline=None)
@given(plans())
def test_dense_mask_equals_brute_force(plan):
    expected = brute_force_mask(plan)
    got = plan.dense_mask("bool")
    assert got.shape == (1, 1, len(plan), len(plan)) and got.dtype == torch.bool
    assert torch.equal(got[0, 0], expected)
    additive = plan.dense_mask("additive", dtype=torch.float16)
    assert additive.dtype == torch.float16
    assert torch.equal(additive[0, 0] == 0, expected)
    assert (additive[0, 0][~expected] == torch.finfo(torch.float16).min).all()


def _densify(bm) -> torch.Tensor:
    """Tokens allowed by a BlockMask: tiles it lists, with the mask_mod applied on partial tiles only."""
    q_len, kv_len = bm.seq_lengths
    bs_q, bs_kv = bm.BLOCK_SIZE
    out = torch.zeros(q_len, kv_len, dtype=torch.bool)
    q = torch.arange(q_len)[:, None]
    k = torch.arange(kv_len)[None, :]
    evaluated = bm.mask_mod(None, None, q, k)
    for row in range(bm.kv_num_blocks.shape[-1]):
        rs = slice(row * bs_q, (row + 1) * bs_q)
        for j in bm.kv_indices[0, 0, row, : bm.kv_num_blocks[0, 0, row]].tolist():
            cs = slice(j * bs_kv, (j + 1) * bs_kv)
            out[rs, cs] = evaluated[rs, cs]
        for j in bm.full_kv_indices[0, 0, row, : bm.full_kv_num_blocks[0, 0, row]].tolist():
            out[rs, j * bs_kv:(j + 1) * bs_kv] = True
    return out


def _tiles(num, idx) -> list[list[int]]:
    return [sorted(idx[0, 0, r, : num[0, 0, r]].tolist()) for r in range(num.shape[-1])]


@settings(max_examples=60, deadline=None)
@given(plans(max_segments=8, max_len=20), st.sampled_from([4, 8, 16]))
def test_block_mask_densified_equals_dense_and_create_block_mask(plan, block):
    bm = plan.block_mask(block_size=block)
    assert torch.equal(_densify(bm), plan.dense_mask()[0, 0])
    reference = create_block_mask(plan.mask_function(), None, None, len(plan), len(plan), device="cpu", BLOCK_SIZE=block)
    assert _tiles(bm.kv_num_blocks, bm.kv_indices) == _tiles(reference.kv_num_blocks, reference.kv_indices)
    assert _tiles(bm.full_kv_num_blocks, bm.full_kv_indices) == _tiles(reference.full_kv_num_blocks, reference.full_kv_indices)
    assert _tiles(bm.q_num_blocks, bm.q_indices) == _tiles(reference.q_num_blocks, reference.q_indices)
    assert _tiles(bm.full_q_num_blocks, bm.full_q_indices) == _tiles(reference.full_q_num_blocks, reference.full_q_indices)


def test_block_mask_on_a_large_plan_without_dense_work():
    # 64 segments over 8k tokens: compare tiles with create_block_mask (which evaluates every element).
    plan = Plan()
    plan.add(Segment("prefix", input_ids=torch.ones(100, dtype=torch.long)))
    for i in range(60):
        plan.add(Segment(f"c{i}", input_ids=torch.ones(120 + i, dtype=torch.long), start=100, causal=i % 3 > 0), sees=["prefix"])
    plan.add(Segment("q", input_ids=torch.ones(50, dtype=torch.long), start=400), sees=plan.names)
    bm = plan.block_mask()
    reference = create_block_mask(plan.mask_function(), None, None, len(plan), len(plan), device="cpu")
    assert torch.equal(bm.to_dense(), reference.to_dense())
    assert _tiles(bm.full_kv_num_blocks, bm.full_kv_indices) == _tiles(reference.full_kv_num_blocks, reference.full_kv_indices)


def test_refinements_compose():
    plan = Plan()
    plan.add(Segment("sink", input_ids=[1, 2]))
    plan.add(Segment("body", input_ids=list(range(3, 13)), start=2))
    rule = plan.mask_function()
    window = sliding_window(3)
    fn = or_masks(and_masks(rule, window), anchor(plan, "sink"))
    n = len(plan)
    q, k = torch.arange(n)[:, None], torch.arange(n)[None, :]
    got = fn(None, None, q, k)
    expected = brute_force_mask(plan) & ((q - k) < 3) | ((k >= 0) & (k < 2))
    assert torch.equal(got, expected)
    # refinements reach every compile target
    refined = dense_mask(plan, refine=window)[0, 0]
    assert torch.equal(refined, brute_force_mask(plan) & ((q - k) < 3))
    assert torch.equal(_densify(plan.block_mask(block_size=4, mask_mod=window)), refined)
    with pytest.raises(PlanError, match="unknown segment 'nope'"):
        anchor(plan, "nope")
    with pytest.raises(ValueError, match="window must be"):
        sliding_window(0)


def test_sliding_window_by_positions():
    pos = torch.tensor([0, 1, 2, 0, 1, 2])
    fn = sliding_window(2, position_ids=pos)
    got = fn(None, None, torch.arange(6)[:, None], torch.arange(6)[None, :])
    assert torch.equal(got, (pos[:, None] - pos[None, :]) < 2)


def test_to_additive_uses_finfo_min():
    m = torch.tensor([[True, False]])
    out = to_additive(m, torch.bfloat16)
    assert out.dtype == torch.bfloat16 and out[0, 0] == 0 and out[0, 1] == torch.finfo(torch.bfloat16).min


def test_dense_mask_rows_for_a_query_block():
    plan = Plan([Segment("a", input_ids=[1, 2, 3]), Segment("b", input_ids=[4, 5], start=3)], [("b", "a")])
    rows = dense_mask(plan, rows=(3, 5))
    assert torch.equal(rows[0, 0], brute_force_mask(plan)[3:5])
    with pytest.raises(ValueError, match="'bool' or 'additive'"):
        plan.dense_mask("float")


@settings(max_examples=60, deadline=None)
@given(plans())
def test_causal_chain_means_the_mask_is_lower_triangular(plan):
    """Whenever causal_chain says a leading run is one plain causal prompt, its mask is exactly causal."""
    for end in range(1, plan.num_segments + 1):
        names = plan.names[:end]
        if causal_chain(plan, names):
            n = plan.spans[names[-1]][1]
            assert torch.equal(dense_mask(plan, rows=(0, n), cols=(0, n))[0, 0], torch.ones(n, n).tril().bool())


def test_causal_chain_cases():
    plan = Plan()
    plan.add(Segment("a", input_ids=[1, 2]))
    plan.add(Segment("b", input_ids=[3, 4], start=2), sees=["a"])
    plan.add(Segment("c", input_ids=[5], start=2), sees=["a"])         # beside b: positions restart
    plan.add(Segment("d", input_ids=[6], start=3, causal=False), sees=["a", "b", "c"])
    assert causal_chain(plan, ["a", "b"])
    assert not causal_chain(plan, ["a", "b", "c"])                         # c does not see b
    assert not causal_chain(plan, ["b"])                                   # b sees a, outside the run
    chained = Plan([Segment("a", input_ids=[1, 2]), Segment("b", input_ids=[3], start=5)])
    assert not causal_chain(chained, ["a", "b"])                           # positions jump
