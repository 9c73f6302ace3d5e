"""StructuredLM: execute any Plan on a Hugging Face model, with the same numbers on every backend.

Backends
- ``dense``: one forward with a 4D mask of the right type (bool for sdpa, additive float for eager and custom
  attention) and the plan's position ids.
- ``flex``: one forward with the plan's FlexAttention BlockMask (compiled; on CPU inference only).
- ``reuse``: the plan's schedule (:mod:`structlm.hf.reuse`). Each segment is a prefill on top of a cache holding
  exactly the segments it sees; its keys and values go to a content-addressed SegmentCache and are reused by
  later plans.
- ``auto``: reuse for acyclic plans on decoders, flex for large plans, dense otherwise.

How one call is made (mask formats, inputs, positions, head) is :mod:`structlm.hf.call`; padded batches are
:mod:`structlm.hf.batch`; generation is :mod:`structlm.hf.generation`.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch

from structlm.errors import BackendError, PlanError, PositionRangeError
from structlm.hf.cache import SegmentCache, model_fingerprint
from structlm.hf.call import ModelCall, is_decoder, position_offset
from structlm.hf.hooks import AttentionHook
from structlm.hf.outputs import LogitsFor, StructuredOutput, logit_rows
from structlm.hf.reuse import PlanState, ReuseExecutor
from structlm.plan import Plan

__all__ = ["StructuredLM", "StructuredOutput", "PlanState", "LogitsFor", "logit_rows"]

BACKENDS = ("auto", "dense", "flex", "reuse")
FLEX_AUTO_TOKENS = 8192


class StructuredLM:
    """Wraps a transformers model (decoder or encoder) and executes Plans on it.

    >>> lm = StructuredLM.from_pretrained("path/or/hub-id")             # doctest: +SKIP
    >>> out = lm.forward(plan)                                         # logits for every token, plan order
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any = None,
        cache: SegmentCache | None = None,
        reposition: str = "off",
        strict_positions: bool = True,
        flex_block_size: int = 128,
        position_offset: int | None = None,
    ) -> None:
        if reposition not in ("off", "exact", "any"):
            raise ValueError(f"reposition must be 'off', 'exact' or 'any', got {reposition!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.is_decoder = is_decoder(model)
        self.fingerprint = model_fingerprint(model)
        self.cache = cache if cache is not None else SegmentCache()
        self.cache.bind(self.fingerprint)
        self.strict_positions = strict_positions
        self.flex_block_size = flex_block_size
        offset = _default_offset(model) if position_offset is None else int(position_offset)
        self.call = ModelCall(model, offset)
        self.executor = ReuseExecutor(self.call, self.cache, self.fingerprint, reposition)

    @classmethod
    def from_pretrained(cls, name_or_path: str, tokenizer: bool | Any = True, attn_implementation: str = "sdpa",
                        dtype: torch.dtype | None = None, **kwargs) -> "StructuredLM":
        """Load a model (causal LM when the checkpoint has one, else the bare encoder) and its tokenizer.

        ``name_or_path`` is a local folder, a hub id, or an embedded name (``"smollm2-135m-instruct"``,
        ``"all-minilm-l6-v2"``: see :func:`structlm.hf.embedded.load_embedded`); an existing local folder of
        that name wins over the embedded model.
        """
        import os

        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

        from structlm.hf.embedded import is_embedded, load_embedded

        wrapper_keys = {"cache", "reposition", "strict_positions", "flex_block_size", "position_offset"}
        wrapper_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in wrapper_keys}
        if is_embedded(name_or_path) and not os.path.exists(name_or_path) and not kwargs:
            model, tok = load_embedded(name_or_path, attn_implementation=attn_implementation, dtype=dtype,
                                       tokenizer=tokenizer is True)
            return cls(model, tokenizer=tok if tokenizer is True else (tokenizer or None), **wrapper_kwargs)
        config = AutoConfig.from_pretrained(name_or_path)
        load = dict(attn_implementation=attn_implementation, **kwargs)
        if dtype is not None:
            load["dtype"] = dtype
        architectures = getattr(config, "architectures", None) or []
        if any("CausalLM" in a for a in architectures):
            model = AutoModelForCausalLM.from_pretrained(name_or_path, **load)
        else:
            model = AutoModel.from_pretrained(name_or_path, **load)
        if tokenizer is True:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        elif tokenizer is False:
            tokenizer = None
        return cls(model, tokenizer=tokenizer, **wrapper_kwargs)

    # ----------------------------------------------------------------------------------------- basics
    @property
    def config(self):
        """The wrapped model's config."""
        return self.model.config

    @property
    def device(self) -> torch.device:
        """Where the model's weights live (inputs are moved there)."""
        return self.call.device

    @property
    def dtype(self) -> torch.dtype:
        """The model's weight dtype (additive masks and soft tokens use it)."""
        return self.call.dtype

    @property
    def position_offset(self) -> int:
        """Added to plan positions before the model sees them (RoBERTa's table starts at ``pad + 1``)."""
        return self.call.offset

    @property
    def reposition(self) -> str:
        """``"off"``, ``"exact"`` or ``"any"``: whether cached segments at other positions are re-rotated."""
        return self.executor.reposition

    @property
    def repositioned(self) -> int:
        """How many segments were reused at other positions (re-rotated keys) so far."""
        return self.executor.repositioned

    def __repr__(self) -> str:
        kind = "decoder" if self.is_decoder else "encoder"
        return (f"StructuredLM({type(self.model).__name__}, {kind}, attn={self.config._attn_implementation}, "
                f"{self.cache!r})")

    # ----------------------------------------------------------------------------------------- checks
    def check_plan(self, plan: Plan, extra_positions: int = 0) -> None:
        """Positions the model can represent, and inputs it can take; raises with what to change."""
        if not isinstance(plan, Plan):
            raise PlanError(f"expected a Plan, got {type(plan).__name__}")
        if not plan.num_segments:
            raise PlanError("the plan has no segments")
        positions = plan.position_ids
        rotary = self.call.is_rotary()
        if positions.is_floating_point() and not rotary:
            raise PositionRangeError(
                f"{type(self.model).__name__} has a table of absolute positions: fractional positions cannot be "
                f"looked up; use integer positions"
            )
        low = positions.min().item()
        high = positions.max().item() + extra_positions + self.position_offset
        limit = getattr(self.config, "max_position_embeddings", None)
        if low < 0:
            raise PositionRangeError(f"plan has negative positions (min {low}); positions start at 0")
        if limit is not None and high >= limit and (self.strict_positions or not rotary):
            raise PositionRangeError(
                f"plan uses position {high}, but {type(self.model).__name__} has max_position_embeddings={limit}; "
                f"reuse positions (parallel segments) or shorten the plan"
                + ("" if not rotary else ", or pass strict_positions=False to extrapolate RoPE")
            )
        self.call.check_token_types(plan.token_type_ids)
        vocab = getattr(self.config, "vocab_size", None)
        if vocab is not None and not plan.has_soft_tokens:
            top = plan.input_ids.max().item()
            if top >= vocab:
                raise PlanError(f"plan holds token id {top}, but the model's vocabulary has {vocab} ids")

    def schedule(self, plan: Plan) -> list[list[str]]:
        """The plan's KV-reuse levels; refused for encoders (``BackendError``) and cyclic plans (``PlanError``)."""
        if not self.is_decoder:
            raise BackendError(
                f"{type(self.model).__name__} is an encoder: every token sees the whole segment, so segments "
                f"cannot be encoded one after another; use backend='dense' or 'flex'"
            )
        return plan.schedule()  # raises a CycleError naming the cycle

    # ----------------------------------------------------------------------------------------- forward
    def choose_backend(self, plan: Plan, output_hidden_states: bool = False) -> str:
        """What ``backend="auto"`` runs: reuse for acyclic decoder plans, flex for large plans, else dense."""
        if self.is_decoder and not output_hidden_states and plan.is_acyclic():
            return "reuse"
        if len(plan) >= FLEX_AUTO_TOKENS and self.flex_available():
            tiles = plan.block_mask(block_size=self.flex_block_size)
            if tiles.sparsity() >= 50.0:  # percent of tiles skipped: worth a compile
                return "flex"
        return "dense"

    def flex_available(self) -> bool:
        """Flex needs model support, and on CPU a C++ compiler for the compiled kernel."""
        import shutil

        if not getattr(self.model, "_supports_flex_attn", False):
            return False
        return self.device.type != "cpu" or bool(shutil.which("g++") or shutil.which("c++"))

    def forward(
        self,
        plan: Plan | Sequence[Plan],
        backend: str = "auto",
        output_hidden_states: bool = False,
        attention: AttentionHook | None = None,
        logits_for: LogitsFor = "all",
        grad: bool = False,
    ) -> StructuredOutput | list[StructuredOutput]:
        """Logits (and hidden states) in plan order; a list of plans gives a list of outputs.

        ``logits_for`` says whose logits to compute: ``"all"`` (default), ``"last"`` (next-token prediction),
        ``"none"``, a list of segment names, or a tensor of token indices. The LM head over a large vocabulary costs more than the attention
        of cached contexts, so ask only for what you use; the output's ``logits_index`` names the tokens kept.
        ``grad=True`` keeps the autograd graph (for fine-tuning; dense backend, one plan).
        """
        if grad and (isinstance(plan, (list, tuple)) or backend not in ("auto", "dense")):
            raise BackendError("grad=True runs one plan on the dense backend")
        if isinstance(plan, (list, tuple)):
            from structlm.hf.batch import forward_batch

            return forward_batch(self, list(plan), backend, output_hidden_states, attention, logits_for)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.check_plan(plan)
        rows = logit_rows(plan, logits_for)
        if backend == "auto":
            backend = "dense" if grad else self.choose_backend(plan, output_hidden_states)
        with torch.set_grad_enabled(grad):
            if backend == "dense":
                out = self._dense(plan, output_hidden_states, attention, rows)
            elif backend == "flex":
                if attention is not None:
                    raise BackendError("custom attention (e.g. APE) runs on the dense and reuse backends, not flex")
                out = self._flex(plan, output_hidden_states, rows)
            else:
                out = self._reuse_forward(plan, output_hidden_states, attention, rows)
        out.backend = backend
        out.logits_index = rows
        return out

    __call__ = forward

    def logits(self, hidden: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor | None:
        """LM-head logits of ``hidden [1, N, H]`` (only ``rows`` of it when given)."""
        return self.call.head(hidden if rows is None else hidden[:, rows.to(hidden.device)])

    def _dense(self, plan: Plan, output_hidden_states: bool, attention, rows) -> StructuredOutput:
        every = torch.arange(len(plan))
        implementation, mask, extra = self.call.setup(attention, plan.dense_mask("bool"), plan, every, every)
        return self._run_full(plan, mask, implementation, output_hidden_states, extra, rows)

    def _flex(self, plan: Plan, output_hidden_states: bool, rows) -> StructuredOutput:
        block = plan.block_mask(block_size=self.flex_block_size, device=self.device)
        with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
            return self._run_full(plan, block, "flex_attention", output_hidden_states, {}, rows)

    def _run_full(self, plan: Plan, mask, implementation: str, output_hidden_states: bool, extra: dict,
                  rows) -> StructuredOutput:
        call = self.call
        inputs = call.inputs(plan)
        positions = call.positions(plan.position_ids)
        with call.implementation(implementation):
            if self.is_decoder:
                out = call.base(**inputs, attention_mask=mask, position_ids=positions, use_cache=False,
                                output_hidden_states=output_hidden_states, **extra)
                hidden = out.last_hidden_state
                return StructuredOutput(logits=self.logits(hidden, rows), last_hidden_state=hidden,
                                        hidden_states=out.hidden_states if output_hidden_states else None)
            out = self.model(**inputs, attention_mask=mask, position_ids=positions, output_hidden_states=True,
                             **extra)
        hidden_states = out.hidden_states
        last = getattr(out, "last_hidden_state", None)
        if last is None:
            last = hidden_states[-1]
        logits = getattr(out, "logits", None)
        if logits is not None and rows is not None:
            logits = logits[:, rows.to(logits.device)]
        return StructuredOutput(logits=logits, last_hidden_state=last,
                                hidden_states=hidden_states if output_hidden_states else None)

    # ----------------------------------------------------------------------------------------- reuse
    def prefill(self, plan: Plan, attention: AttentionHook | None = None, use_cache: bool = True) -> PlanState:
        """Encode every segment in dependency order, reusing cached segments: each segment's keys, values and
        final hidden states, by name (what ``generate`` continues from)."""
        levels = self.schedule(plan)
        self.check_plan(plan)
        return self.executor.run(plan, levels, attention=attention, use_cache=use_cache)[0]

    def _reuse_forward(self, plan: Plan, output_hidden_states: bool, attention, rows) -> StructuredOutput:
        state, layer_states = self.executor.run(plan, self.schedule(plan), attention=attention,
                                                output_hidden_states=output_hidden_states)
        hidden = state.hidden()
        hidden_states = None
        if output_hidden_states:
            count = len(next(iter(layer_states.values())))
            hidden_states = tuple(
                torch.cat([layer_states[name][i][0] for name in plan.names])[None] for i in range(count)
            )
        return StructuredOutput(logits=self.logits(hidden, rows), last_hidden_state=hidden,
                                hidden_states=hidden_states)

    # ----------------------------------------------------------------------------------------- uses
    def hidden_states(self, plan: Plan, layers: Iterable[int] | None = None,
                      backend: str = "dense") -> dict[int, torch.Tensor]:
        """Per-layer hidden states ``[N, H]`` in plan order (0 = embeddings), for probes."""
        out = self.forward(plan, backend=backend, output_hidden_states=True, logits_for="none")
        states = out.hidden_states
        chosen = range(len(states)) if layers is None else list(layers)
        result = {}
        for layer in chosen:
            if not -len(states) <= layer < len(states):
                raise ValueError(f"layer {layer} out of range: the model has {len(states)} hidden states "
                                 f"(0..{len(states) - 1})")
            result[layer] = states[layer][0]
        return result

    def score(self, plan: Plan, segment_names: Iterable[str] | None = None, backend: str = "auto",
              against: str | None = None, attention: AttentionHook | None = None,
              normalize: bool = False, head=None) -> dict[str, float]:
        """Decoders: summed log-likelihood of each named segment's tokens given what it sees (``normalize``:
        divided by the number of tokens scored). All segments come from one pass.

        Token i > 0 is scored by the logits of token i-1 of its own segment; the first token by the last token
        of the last segment it sees (its shared context), and is left out when it sees nothing.
        Encoders: each segment's final states mean-pooled, then ``head`` (``[K, H] -> [K]``, e.g. a trained
        :class:`~structlm.hf.ranking_train.RankingHead`) or the cosine similarity with segment ``against``.
        """
        from structlm.hf.scoring import score

        return score(self, plan, segment_names, backend=backend, against=against, attention=attention,
                     normalize=normalize, head=head)

    def rank(self, plan: Plan, segment_names: Iterable[str] | None = None, **options):
        """The named segments (default: the plan's candidates) best first; see :func:`structlm.hf.ranking.rank`."""
        from structlm.hf.ranking import rank

        return rank(self, plan, segment_names, **options)

    def generate(
        self,
        plan: Plan,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        eos_token_id: int | Sequence[int] | None = None,
        attention: AttentionHook | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """New tokens ``[1, T]``: they see the last segment and everything it sees; positions continue after it.

        Greedy by default; ``do_sample`` with ``temperature`` / ``top_p`` (and a ``generator`` for seeds).
        """
        from structlm.hf.generation import generate

        return generate(self, plan, max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature,
                        top_p=top_p, eos_token_id=eos_token_id, attention=attention, generator=generator)


def _default_offset(model: torch.nn.Module) -> int:
    return position_offset(model)
