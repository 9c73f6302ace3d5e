"""APE attention: exactness against independent implementations of the formula, T=S=1 identity, conventions,
rows/columns rules (dense, reuse-shaped and decode calls), errors."""
from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from structlm import rag
from structlm.hf.attention import APE, IMPLEMENTATION, KWARG, ApeCall, ape_attention
from tests.test_rag_support import run_plan, tiny_model

CONTEXTS = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
PREFIX = [1, 2, 3]
QUERY = [20, 21, 22]


def parallel_plan():
    return rag.parallel(None, CONTEXTS, QUERY, prefix=PREFIX)


def dense_kwargs(ape: APE, plan):
    idx = torch.arange(len(plan))
    return ape.forward_kwargs(plan, idx, idx)


# --------------------------------------------------------------------------------------------- closed form
def closed_form(q, k, v, allowed, context, ape_rows, T, e, scaling, softcap=None):
    """Per-token APE weights written out directly (float64), one row and head at a time.

    a_j = exp(s_j/T) Z_C^(e-1) / (Z_C^e + Z_O) on context keys, exp(s_j) / (Z_C^e + Z_O) on the others.
    """
    q, k, v = q.double(), k.double(), v.double()
    B, H, Q, D = q.shape
    groups = H // k.shape[1]
    out = torch.zeros(B, Q, H, D, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            kh, vh = k[b, h // groups], v[b, h // groups]
            for i in range(Q):
                s = (kh @ q[b, h, i]) * scaling
                if softcap is not None:
                    s = torch.tanh(s / softcap) * softcap
                vis = allowed[i]
                if not ape_rows[i]:
                    w = torch.where(vis, torch.exp(s - s[vis].max()), torch.zeros_like(s))
                    out[b, i, h] = (w / w.sum()) @ vh
                    continue
                c = vis & context
                o = vis & ~context
                z_c = torch.exp(s[c] / T).sum()
                z_o = torch.exp(s[o]).sum()
                denom = z_c**e + z_o
                a = torch.zeros_like(s)
                a[c] = torch.exp(s[c] / T) * z_c ** (e - 1) / denom
                a[o] = torch.exp(s[o]) / denom
                assert abs(float(a.sum()) - 1) < 1e-9
                out[b, i, h] = a @ vh
    return out


class _Module(torch.nn.Module):
    training = False


@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("mask_kind", ["additive", "bool"])
def test_attention_function_matches_closed_form(softcap, mask_kind):
    torch.manual_seed(1)
    H, Hkv, Q, KV, D = 4, 2, 5, 11, 8
    q = torch.randn(1, H, Q, D) * 2
    k = torch.randn(1, Hkv, KV, D) * 2
    v = torch.randn(1, Hkv, KV, D)
    allowed = torch.rand(Q, KV) > 0.3
    allowed[:, 0] = True
    allowed[2] = False
    allowed[2, 9] = True  # a row that sees only non-context keys
    context = torch.zeros(KV, dtype=torch.bool)
    context[3:8] = True
    allowed[1, 3:8] = True
    rows = torch.tensor([True, True, True, False, True])
    additive = torch.where(allowed, 0.0, torch.finfo(torch.float32).min)
    mask = (allowed if mask_kind == "bool" else additive)[None, None]
    for T, e in [(0.9, 0.81), (0.5, 1.7), (1.0, 1.0)]:
        call = ApeCall(rows, context, T, e)
        out, weights = ape_attention(_Module(), q, k, v, mask, scaling=0.3, softcap=softcap, **{KWARG: call})
        assert weights is None and out.shape == (1, Q, H, D)
        ref = closed_form(q, k, v, allowed, context, rows, T, e, 0.3, softcap)
        torch.testing.assert_close(out.double(), ref, atol=2e-6, rtol=2e-5)


def test_no_mask_means_causal_bottom_right():
    torch.manual_seed(2)
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 6, 4), torch.randn(1, 2, 6, 4)
    out, _ = ape_attention(_Module(), q, k, v, None, scaling=0.5)
    allowed = torch.arange(6)[None, :] <= torch.arange(3)[:, None] + 3
    ref = closed_form(q, k, v, allowed, torch.zeros(6, dtype=torch.bool), torch.zeros(3, dtype=torch.bool), 1, 1, 0.5)
    torch.testing.assert_close(out.double(), ref, atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------------------------- one-layer model
def manual_llama_forward(model, plan, T, e):
    """A one-layer Llama forward written out by hand, with APE's closed-form weights on query rows."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    inner = model.model
    layer = inner.layers[0]
    attn = layer.self_attn
    ids, pos = plan.input_ids, plan.position_ids
    with torch.no_grad():
        x = inner.embed_tokens(ids)
        h = layer.input_layernorm(x)
        n, d = ids.shape[1], attn.head_dim
        q = attn.q_proj(h).view(1, n, -1, d).transpose(1, 2)
        k = attn.k_proj(h).view(1, n, -1, d).transpose(1, 2)
        v = attn.v_proj(h).view(1, n, -1, d).transpose(1, 2)
        cos, sin = inner.rotary_emb(x, pos)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        allowed = plan.dense_mask("bool")[0, 0]
        roles = [plan[name].role for name in plan.names]
        seg = plan.segment_ids
        context = torch.tensor([roles[s] == "context" for s in seg])
        rows = torch.tensor([roles[s] == "query" for s in seg])
        a = closed_form(q, k, v, allowed, context, rows, T, e, attn.scaling).float()
        x = x + attn.o_proj(a.reshape(1, n, -1))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
        return model.lm_head(inner.norm(x))


@pytest.mark.parametrize("ape", [APE(0.9, 0.9), APE(0.6, 1.3, convention="paper"), APE(1.0, 1.0)])
def test_one_layer_model_matches_hand_written_ape(ape):
    model = tiny_model("llama", layers=1)
    plan = parallel_plan()
    out = run_plan(model, plan, attn=IMPLEMENTATION, **dense_kwargs(ape, plan))
    ref = manual_llama_forward(model, plan, ape.temperature, ape.exponent)
    torch.testing.assert_close(out.logits, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "phi3", "gemma2", "gemma3"])
def test_t1_s1_is_plain_parallel_attention(arch):
    model = tiny_model(arch)
    plan = parallel_plan()
    ref = run_plan(model, plan, attn="eager")
    out = run_plan(model, plan, attn=IMPLEMENTATION, **dense_kwargs(APE(1.0, 1.0), plan))
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-5, rtol=1e-5)
    # and a real APE setting moves only the query rows
    ape = run_plan(model, plan, attn=IMPLEMENTATION, **dense_kwargs(APE(0.5, 0.8), plan))
    q0 = plan.spans["query"][0]
    torch.testing.assert_close(ape.logits[0, :q0], ref.logits[0, :q0], atol=1e-5, rtol=1e-5)
    assert (ape.logits[0, q0:] - ref.logits[0, q0:]).abs().max() > 1e-3


def test_conventions_relate_by_t():
    model = tiny_model("llama")
    plan = parallel_plan()
    T, S = 0.7, 0.9
    repo = run_plan(model, plan, attn=IMPLEMENTATION, **dense_kwargs(APE(T, S, convention="repo"), plan))
    paper = run_plan(model, plan, attn=IMPLEMENTATION, **dense_kwargs(APE(T, S * T, convention="paper"), plan))
    torch.testing.assert_close(repo.logits, paper.logits, atol=1e-6, rtol=1e-6)
    assert APE().exponent == pytest.approx(0.81) and APE(convention="paper").exponent == pytest.approx(0.9)


def test_context_roles_option_for_graph_kv():
    model = tiny_model("llama")
    plan = rag.graph_kv_rag(None, CONTEXTS, QUERY, top_m=1, prefix=PREFIX)
    ref = run_plan(model, plan, attn="eager")
    default = run_plan(model, plan, attn=IMPLEMENTATION, **dense_kwargs(APE(0.5, 0.8), plan))
    torch.testing.assert_close(default.logits, ref.logits, atol=1e-5, rtol=1e-5)  # no "context" roles here
    chunks = APE(0.5, 0.8, context_roles=("source", "target"))
    moved = run_plan(model, plan, attn=IMPLEMENTATION, **dense_kwargs(chunks, plan))
    assert (moved.logits - ref.logits).abs().max() > 1e-3


# --------------------------------------------------------------------------------------------- reuse-shaped calls
def test_reuse_shaped_and_decode_calls_match_dense():
    """Contexts cached from a plain pass, then the query as a prefill over the cache, then one decode step."""
    model = tiny_model("llama")
    plan = parallel_plan()
    ape = APE(0.6, 0.8)
    q0, q1 = plan.spans["query"]
    model.set_attn_implementation("eager")
    with torch.no_grad():
        body = plan.subplan([n for n in plan.names if n != "query"])
        pre = model(input_ids=body.input_ids, attention_mask=body.dense_mask("additive"),
                    position_ids=body.position_ids, use_cache=True)
    cache = DynamicCache([(layer.keys, layer.values) for layer in pre.cache.layers])
    model.set_attn_implementation(IMPLEMENTATION)
    rows, cols = torch.arange(q0, q1), torch.arange(q1)
    mask = plan.dense_mask("additive")[:, :, q0:q1]
    with torch.no_grad():
        out = model(input_ids=plan.input_ids[:, q0:q1], attention_mask=mask, position_ids=plan.position_ids[:, q0:q1],
                    cache=cache, use_cache=True, **ape.forward_kwargs(plan, rows, cols))
    dense = run_plan(model, plan, attn=IMPLEMENTATION, **dense_kwargs(ape, plan))
    torch.testing.assert_close(out.logits[0], dense.logits[0, q0:q1], atol=1e-5, rtol=1e-5)
    # one generated token (-1): reference = the plan with that token appended to the query segment
    token = 30
    longer = rag.parallel(None, CONTEXTS, QUERY + [token], prefix=PREFIX)
    step_mask = torch.zeros(1, 1, 1, q1 + 1)
    next_pos = plan.position_ids[:, -1:] + 1
    model.set_attn_implementation(IMPLEMENTATION)
    with torch.no_grad():
        step = model(input_ids=torch.tensor([[token]]), attention_mask=step_mask, position_ids=next_pos,
                     cache=out.cache, use_cache=True,
                     **ape.forward_kwargs(plan, torch.tensor([-1]), torch.cat([torch.arange(q1), torch.tensor([-1])])))
    ref = run_plan(model, longer, attn=IMPLEMENTATION, **dense_kwargs(ape, longer))
    torch.testing.assert_close(step.logits[0, -1], ref.logits[0, -1], atol=1e-5, rtol=1e-5)


def test_forward_kwargs_rules():
    plan = parallel_plan()
    call = APE().forward_kwargs(plan, torch.tensor([0, 4, len(plan) - 1, -1]), torch.tensor([0, 3, 4, 10, -1]))[KWARG]
    assert call.rows.tolist() == [False, False, True, True]
    assert call.context.tolist() == [False, True, True, True, False]
    with pytest.raises(ValueError, match="plan token indices"):
        APE().forward_kwargs(plan, torch.tensor([len(plan)]), torch.tensor([0]))


def test_errors():
    for bad in (dict(temperature=0), dict(scale=-1.0), dict(temperature=float("nan")), dict(scale=True)):
        with pytest.raises(ValueError, match="positive finite"):
            APE(**bad)
    with pytest.raises(ValueError, match="convention"):
        APE(convention="both")
    with pytest.raises(TypeError, match="tuple of role names"):
        APE(context_roles="context")
    with pytest.raises(ValueError, match="both context and query"):
        APE(context_roles=("context", "query"))
    q, k = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4)
    call = ApeCall(torch.ones(2, dtype=torch.bool), torch.zeros(5, dtype=torch.bool), 1.0, 1.0)
    with pytest.raises(ValueError, match="prepared for 2 rows"):
        ape_attention(_Module(), q, k, k, None, **{KWARG: call})
    with pytest.raises(NotImplementedError, match="sinks"):
        ape_attention(_Module(), q, k, k, None, s_aux=torch.zeros(2))
    with pytest.raises(ValueError, match="4D attention mask"):
        ape_attention(_Module(), q, k, k, torch.zeros(3, 5))
    training = _Module()
    training.training = True
    with pytest.raises(NotImplementedError, match="eval"):
        ape_attention(training, q, k, k, None, dropout=0.1)
    with pytest.warns(UserWarning, match="sliding window"):
        ape_attention(_Module(), q, k, k, None, sliding_window=2)
