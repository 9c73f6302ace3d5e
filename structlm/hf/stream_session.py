"""StreamSession: read source chunks and write target tokens at once, with group positions; nothing re-encoded.

The live form of :func:`structlm.stream.plan`. Source tokens take positions 0, 1, … and target tokens ``phi``,
``phi + 1``, …; a read encodes only the new source tokens (they see earlier source only), a write encodes only
the new target tokens (they see all source read so far and the earlier target). The two groups' keys and values
stay apart by role, not by buffer: one append-only cache holds every slot with its group tagged, a read's mask
hides the target slots, and a write sees them all. Why one buffer: joining a separate source cache and target
cache at every write step (what the paper's code does) copies the whole source again per token; here a step
costs its own tokens plus attention over the slots it sees.

The shift by one comes for free: the last token a write returns is *pending* — it is fed, with whatever source
is in by then, at the start of the next write, so its row sees the source its successor is written with. With
``stop="word"`` a write stops when the model starts a new word; that first token of the next word is dropped
and the row that chose it is taken back (one cached slot), to be recomputed after the next read, as in the
paper's loop. So the session's logits equal the batch plan's under the same actions, which the tests prove.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence, Union

import torch
from transformers import DynamicCache

from structlm.errors import BackendError, PlanError, PositionRangeError
from structlm.hf.call import ModelCall, is_decoder, mask_kind, position_offset
from structlm.hf.model import StructuredLM
from structlm.hf.room import room_cache, with_room
from structlm.masks import cache_step_mask, formatted
from structlm.plan import Plan
from structlm.stream.latency import al, delays_from_trace, laal
from structlm.stream.layout import GroupPositions, StreamTemplate, chunk_ids, labels, stream_text
from structlm.stream.layout import plan as stream_plan
from structlm.stream.trace import show_trace, trace_text
from structlm.stream.policy import READ, WRITE, Policy, Replay, WaitK, check_policy, decide
from structlm.text import Text

__all__ = ["StreamSession", "stream_loss"]

PUNCTUATION = (".", ",", ":", ";", "?", "!")
ROOM = 256


def _model_call(model_or_lm: Any) -> tuple[ModelCall, Any]:
    if isinstance(model_or_lm, StructuredLM):
        return model_or_lm.call, model_or_lm.tokenizer
    if not isinstance(model_or_lm, torch.nn.Module):
        raise TypeError(f"StreamSession takes a StructuredLM or a transformers model, got {type(model_or_lm).__name__}")
    return ModelCall(model_or_lm.eval(), position_offset(model_or_lm)), None


class StreamSession:
    """A simultaneous stream on a decoder: ``read`` source chunks, ``write`` target tokens, ``run`` both.

    ``policy`` (``WaitK(k)`` or a callable ``(n_read, n_written) -> "read" | "write"``) drives :meth:`run`;
    ``prompt`` and ``template`` (a :class:`~structlm.stream.StreamTemplate`) wrap the stream as in the batch
    plan. ``keep_logits`` records the distribution each written token was chosen from (for tests and scoring).
    """

    def __init__(self, model_or_lm: Any, tokenizer: Any = None, policy: Union[Policy, int] = WaitK(3),
                 phi: Union[int, float] = 0, prompt: Text | None = None, template: StreamTemplate | None = None,
                 eos_token_id: int | Sequence[int] | None = None, keep_logits: bool = False,
                 strict_positions: bool = True) -> None:
        self.call, lm_tokenizer = _model_call(model_or_lm)
        model = self.call.model
        if not is_decoder(model):
            raise BackendError(f"{type(model).__name__} is an encoder: every token sees the whole input, so it "
                               f"cannot read and write a stream; use a decoder (causal LM)")
        if getattr(model, "get_output_embeddings", lambda: None)() is None:
            raise BackendError(f"{type(model).__name__} has no LM head: load it as a causal LM to write")
        self.tokenizer = tokenizer if tokenizer is not None else lm_tokenizer
        self.policy = check_policy(policy)
        self.phi = GroupPositions(phi).phi
        if isinstance(self.phi, float) and not self.phi.is_integer() and not self.call.is_rotary():
            raise PositionRangeError(f"{type(model).__name__} has a table of absolute positions: a fractional phi "
                                     f"({self.phi}) cannot be looked up; use an integer phi")
        limit = getattr(model.config, "max_position_embeddings", None)
        self.limit = None if (limit is None or (not strict_positions and self.call.is_rotary())) else int(limit)
        self.fixed = stream_text(self.tokenizer, prompt, template)
        if self.fixed.target_start.numel() == 0:
            start = getattr(model.config, "bos_token_id", None)
            if start is None:
                raise PlanError("the first write needs a token to start the target from: give a template with "
                                "target_start (e.g. StreamTemplate.chat(tokenizer)) or a model with a bos_token_id")
            self.fixed = type(self.fixed)(self.fixed.prompt, self.fixed.source_end,
                                          torch.tensor([int(start)]), self.fixed.target_end)
        if eos_token_id is None:
            eos_token_id = getattr(model.config, "eos_token_id", None)
        self.eos = set([eos_token_id] if isinstance(eos_token_id, int) else (eos_token_id or []))
        self.keep_logits = keep_logits
        self.reset()

    # ----------------------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget the stream: empty caches, positions back to 0 and phi, no trace."""
        self.positions = GroupPositions(self.phi)
        self.cache: DynamicCache | None = None
        self.is_target = torch.zeros(0, dtype=torch.bool)
        self.pending: list[int] = self.fixed.target_start.tolist()
        self.prompt_read = False
        self.source_ended = False
        self.done = False
        self.steps: list[str] = []
        self.source_chunks: list[torch.Tensor] = []
        self.target_chunks: list[list[int]] = []
        self.logits: list[torch.Tensor] = []
        self.encoded = {"source": 0, "target": 0}

    @property
    def n_read(self) -> int:
        """Source chunks read (the prompt aside; the template's source end counts once read)."""
        return self.steps.count(READ)

    @property
    def n_written(self) -> int:
        """Writes done (each one target chunk)."""
        return self.steps.count(WRITE)

    @property
    def written(self) -> list[int]:
        """Every target token written so far."""
        return [t for chunk in self.target_chunks for t in chunk]

    def text(self) -> str:
        """The target written so far, decoded (needs a tokenizer)."""
        if self.tokenizer is None:
            raise ValueError("text() needs a tokenizer; use .written for the token ids")
        return self.tokenizer.decode(self.written, skip_special_tokens=True)

    # ----------------------------------------------------------------------------------------- model steps
    def _check_range(self, source: int = 0, target: int = 0) -> None:
        top = self.positions.highest(source, target) + self.call.offset
        if self.limit is not None and top >= self.limit:
            raise PositionRangeError(f"the stream would reach position {top}, but {type(self.call.model).__name__} "
                                     f"has max_position_embeddings={self.limit}; reset() for a new stream, lower "
                                     f"phi, or pass strict_positions=False to extrapolate RoPE")

    def _forward(self, ids: Sequence[int] | torch.Tensor, positions: torch.Tensor, target: bool) -> torch.Tensor:
        """Encode ``ids`` at ``positions`` on top of the cache (a read sees source slots only); final hidden."""
        call = self.call
        ids = torch.as_tensor(ids, dtype=torch.long)
        visible = torch.ones_like(self.is_target) if target else ~self.is_target
        implementation = call.masked_implementation()
        mask = cache_step_mask(visible, ids.numel(), mask_kind(implementation), call.dtype).to(call.device)
        cache = self.cache if self.cache is not None else DynamicCache()
        with torch.no_grad(), call.implementation(implementation):
            out = call.base(input_ids=ids[None].to(call.device), attention_mask=mask,
                            position_ids=call.positions(positions)[None], cache=cache, use_cache=True)
        if self.cache is None:  # move to buffers with room: later steps write in place instead of concatenating
            layers = out.cache.layers
            length = layers[0].keys.shape[-2]
            self.cache = room_cache([with_room([layer.keys], ROOM) for layer in layers],
                                    [with_room([layer.values], ROOM) for layer in layers], length)
        self.is_target = torch.cat([self.is_target, torch.full((ids.numel(),), target, dtype=torch.bool)])
        self.encoded["target" if target else "source"] += ids.numel()
        return out.last_hidden_state[0]

    def _take_back(self) -> None:
        """Drop the last cached slot (a target row that must be recomputed after the next read)."""
        self.cache.crop(-1)
        self.is_target = self.is_target[:-1]
        self.positions.drop_target(1)
        self.encoded["target"] -= 1

    # ----------------------------------------------------------------------------------------- read / write
    def read(self, chunk: Text) -> int:
        """Read one source chunk (text or ids): encode its tokens at the next source positions. Returns its length.

        The first read also encodes the prompt segment in front of it.
        """
        if self.source_ended:
            raise PlanError("the source has ended (finish() read its end); reset() to start a new stream")
        ids = chunk_ids(self.tokenizer, chunk, f"source chunk {len(self.source_chunks)}")
        self._read_ids(ids)
        return ids.numel()

    def _read_ids(self, ids: torch.Tensor) -> None:
        feed = ids if self.prompt_read else torch.cat([self.fixed.prompt, ids])
        self._check_range(source=feed.numel())
        self._forward(feed, self.positions.source(feed.numel()), target=False)
        self.prompt_read = True
        self.source_chunks.append(ids)
        self.steps.append(READ)

    def finish(self) -> None:
        """The source is complete: read the template's source end (if any); later writes see all of it."""
        if self.source_ended:
            return
        if not self.prompt_read:
            raise PlanError("finish() before any read: read the source first")
        if self.fixed.source_end.numel():
            self._read_ids(self.fixed.source_end)
        self.source_ended = True

    def write(self, max_tokens: int = 1, stop: str | None = None) -> list[int]:
        """Write up to ``max_tokens`` target tokens greedily (one target chunk); returns them.

        ``stop="word"``: stop before the model starts a new word (the first token of the next word is dropped
        and recomputed after the next read) or after punctuation; ``None``: exactly ``max_tokens`` unless EOS.
        """
        if not self.prompt_read:
            raise PlanError("write() before any read(): a stream writes from the source read so far; read a chunk "
                            "first")
        if stop not in (None, "word"):
            raise ValueError(f"stop must be None or 'word', got {stop!r}")
        if stop == "word" and self.tokenizer is None:
            raise ValueError("stop='word' needs a tokenizer to see word boundaries")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
        if self.done:
            return []
        out: list[int] = []
        chosen: list[torch.Tensor] = []
        while len(out) < max_tokens:
            feed = self.pending
            self._check_range(target=len(feed))
            hidden = self._forward(feed, self.positions.target(len(feed)), target=True)
            with torch.no_grad():
                logits = self.call.head(hidden[-1:])[0]
            token = int(torch.argmax(logits).item())
            if stop == "word" and out and self._starts_word(out, token):
                self._take_back()
                break
            out.append(token)
            chosen.append(logits)
            self.pending = [token]
            if token in self.eos:
                self.done = True
                break
            if stop == "word" and self._ends_clause(token):
                break
        self.target_chunks.append(out)
        self.steps.append(WRITE)
        if self.keep_logits:
            self.logits.extend(chosen)
        return out

    def _starts_word(self, out: list[int], token: int) -> bool:
        before = self.tokenizer.decode(out)
        after = self.tokenizer.decode(out + [token])
        new = after[len(before):] if after.startswith(before) else after
        return new[:1].isspace()

    def _ends_clause(self, token: int) -> bool:
        return self.tokenizer.decode([token]).rstrip().endswith(PUNCTUATION)

    def run(self, source: Iterable[Text], max_tokens: int = 50, max_extra_writes: int = 100) -> Iterator[Any]:
        """Read ``source`` chunk by chunk, writing whenever the policy says so; then finish and write to EOS.

        Yields each write's piece as it is made: decoded text with a tokenizer, else the token ids. A write is a
        word (``stop="word"``, at most ``max_tokens`` tokens) with a tokenizer, one token without.
        ``max_extra_writes``: writes allowed after the source ends, beyond one per source chunk.
        """
        stop = "word" if self.tokenizer is not None else None
        size = max_tokens if stop else 1
        for chunk in source:
            self.read(chunk)
            while not self.done and decide(self.policy, self.n_read, self.n_written) == WRITE:
                yield self._piece(self.write(size, stop))
        if not self.prompt_read:
            raise PlanError("run() got an empty source: a stream needs at least one source chunk")
        self.finish()
        budget = self.n_read + max_extra_writes
        while not self.done and self.n_written < budget:
            yield self._piece(self.write(size, stop))

    def _piece(self, tokens: list[int]) -> Any:
        if self.tokenizer is None:
            return tokens
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    # ----------------------------------------------------------------------------------------- trace
    def delays(self) -> list[int]:
        """Per write, the source chunks read before it (the template's end tag not counted)."""
        return delays_from_trace(self.steps, self.source_length)

    @property
    def source_length(self) -> int:
        """Source chunks read, the template's end tag not counted."""
        return len(self.source_chunks) - (1 if self.source_ended and self.fixed.source_end.numel() else 0)

    def latency(self, reference_length: int | None = None) -> dict[str, float]:
        """AL and LAAL (SimulEval's formulas) of the writes so far, in chunks."""
        delays = self.delays()
        return {"AL": al(delays, self.source_length, reference_length),
                "LAAL": laal(delays, self.source_length, reference_length)}

    def pieces(self) -> tuple[list[str], list[str]]:
        """The chunks read and the pieces written, as text (token ids as text without a tokenizer)."""
        show = (lambda ids: self.tokenizer.decode(list(ids))) if self.tokenizer is not None else (
            lambda ids: " ".join(str(int(t)) for t in ids))
        return [show(c) for c in self.source_chunks], [show(c) for c in self.target_chunks]

    def trace_text(self, width: int = 48) -> str:
        """One line per write: chunks read so far, the source read since the last write, the piece written."""
        return trace_text(self.steps, *self.pieces(), width=width)

    def show_trace(self, path: str | None = None, **kwargs):
        """The read/write staircase (matplotlib); see :func:`structlm.stream.show_trace`."""
        k = getattr(self.policy, "k", None)
        return show_trace(self.steps, *self.pieces(), path=path, k=kwargs.pop("k", k), **kwargs)

    def plan(self) -> Plan:
        """The batch plan of what happened: the chunks read and written, under the session's own actions."""
        if not self.target_chunks or not any(self.target_chunks):
            raise PlanError("nothing written yet: the batch plan of a stream needs at least one write")
        sources = self.source_chunks[:-1] if (self.source_ended and self.fixed.source_end.numel()) else self.source_chunks
        end = self.fixed.source_end if self.source_ended else ()
        template = StreamTemplate(source_end=end, target_start=self.fixed.target_start)
        steps = [s for s, chunk in zip(self.steps, self._step_chunks()) if chunk]
        return stream_plan(sources, [c for c in self.target_chunks if c], policy=Replay(steps), phi=self.phi,
                           prompt=self.fixed.prompt, template=template)

    def _step_chunks(self) -> list[bool]:
        """Per step, whether it added tokens (an empty write after EOS adds none)."""
        writes = iter(self.target_chunks)
        return [True if s == READ else bool(next(writes)) for s in self.steps]


def stream_loss(model_or_lm: Any, plan: Plan) -> torch.Tensor:
    """Cross-entropy of a stream plan's target tokens (:func:`structlm.stream.labels`), with gradients.

    The dense backend's call — the plan's mask in the attention implementation's format, its group positions —
    made outside ``no_grad``, so ``loss.backward()`` trains the model on the shifted wait-k mask.
    """
    call, _ = _model_call(model_or_lm)
    implementation = call.masked_implementation()

    mask = formatted(plan.dense_mask("bool"), mask_kind(implementation), call.dtype).to(call.device)
    with call.implementation(implementation):
        out = call.model(**call.inputs(plan), attention_mask=mask, position_ids=call.positions(plan.position_ids),
                         labels=labels(plan).to(call.device), use_cache=False)
    return out.loss
