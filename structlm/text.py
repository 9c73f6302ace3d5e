"""Text to token ids for every front-end: templates, the BOS rule, ids checked once.

Why one module: every front-end that takes text (RAG prompts, graph prompts, candidates, streams) must tokenize
the same way — no special tokens inside a part, the tokenizer's BOS (when it adds one by default) once at the very
start — or plans built by different front-ends would disagree about the same prompt.

* :func:`token_ids`: a string through an optional template and the tokenizer (``add_special_tokens=False``), or
  token ids checked and copied; always a 1-D long tensor.
* :func:`bos_id` / :func:`prefix_ids`: the BOS rule.
* :class:`Template`: format strings around each part of a prompt; ``Template.chat`` splits a chat template
  around one user turn.
* :func:`demo_tokenizer`: a whitespace word-level tokenizer built in memory, for offline demos and tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, Union

import torch

__all__ = ["Text", "Template", "TemplateLike", "apply_template", "token_ids", "bos_id", "with_bos", "prefix_ids",
           "demo_tokenizer"]

Text = Union[str, Sequence[int], torch.Tensor]
TemplateLike = Union["Template", Callable[[str, str], str]]


@dataclass(frozen=True)
class Template:
    """Format strings wrapped around each part of a RAG prompt before tokenization.

    Why: chat models need a header before the prompt and a footer (end of turn, assistant header) after the
    question. APE keeps the header in the shared prefix and the footer after the query, so contexts stay
    independent of the question and cacheable. Each field holds one ``{}``-free slot named after its part.
    """

    prefix: str = "{prefix}"
    context: str = "{context}"
    query: str = "{query}"

    def __post_init__(self) -> None:
        for part in ("prefix", "context", "query"):
            text = getattr(self, part)
            if not isinstance(text, str) or text.count("{" + part + "}") != 1:
                raise ValueError(f"Template.{part} must contain the slot {{{part}}} exactly once, got {text!r}")

    def __call__(self, part: str, text: str) -> str:
        if part not in ("prefix", "context", "query"):
            raise ValueError(f"unknown template part {part!r}: one of prefix, context, query")
        return getattr(self, part).replace("{" + part + "}", text)

    @classmethod
    def chat(cls, tokenizer, system: str | None = None, context: str = "{context}") -> "Template":
        """Split the tokenizer's chat template around one user turn: header → prefix, footer → query.

        The prompt ``prefix`` text goes right after the header, contexts follow it, and the question is the end of
        the user turn followed by the assistant header (``add_generation_prompt=True``).
        """
        sentinel = "\u2063STRUCTLM_SPLIT\u2063"
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": sentinel}]
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("Template.chat: the tokenizer has no chat_template; "
                             "pass Template(prefix=..., query=...) yourself")
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if rendered.count(sentinel) != 1:
            raise ValueError("Template.chat: the chat template does not place the user message once; "
                             "build a Template by hand")
        head, tail = rendered.split(sentinel)
        # Slots are filled with str.replace, so literal braces in a chat header need no escaping.
        return cls(prefix=head + "{prefix}", context=context, query="{query}" + tail)


def apply_template(template: TemplateLike | None, part: str, text: str) -> str:
    if template is None:
        return text
    if not callable(template):
        raise TypeError(f"template must be a Template or a callable (part, text) -> text, "
                        f"got {type(template).__name__}")
    out = template(part, text)
    if not isinstance(out, str):
        raise TypeError(f"template returned {type(out).__name__} for part {part!r}; it must return a string")
    return out


def bos_id(tokenizer) -> int | None:
    """The BOS id when the tokenizer prepends one by default (Llama, Gemma…), else None (Qwen2, GPT-2…)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    try:
        ids = tokenizer.encode("a", add_special_tokens=True)
    except Exception:  # pragma: no cover - exotic tokenizers
        return None
    return bos if ids[:1] == [bos] else None


def token_ids(tokenizer, value: Text, what: str = "text", part: str | None = None,
              template: TemplateLike | None = None) -> torch.Tensor:
    """Token ids ``[L]`` (long) of one part: a string goes through ``template`` (for ``part``) and the tokenizer
    without special tokens; ids are checked (1-D, non-negative integers) and copied. ``what`` names the part in
    error messages."""
    if isinstance(value, str):
        if tokenizer is None:
            raise ValueError(f"{what} is text but no tokenizer was given; pass a tokenizer or token ids")
        text = apply_template(template, part, value) if part is not None else value
        ids = tokenizer.encode(text, add_special_tokens=False) if text else []
        return torch.tensor(ids, dtype=torch.long)
    if isinstance(value, torch.Tensor):
        value = value.detach().clone()  # the plan must not alias the caller's tensor
    else:
        try:
            value = list(value)
        except TypeError:
            raise TypeError(f"{what} must be a string or a sequence of token ids, got {type(value).__name__}") from None
        if any(type(token) is bool for token in value):
            raise ValueError(f"{what}: token ids must be non-negative integers, got a bool")
        try:
            value = torch.tensor(value) if value else torch.zeros(0, dtype=torch.long)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{what}: token ids must be non-negative integers, got {value[:8]!r}...") from None
    if value.dim() == 2 and value.shape[0] == 1:
        value = value[0]
    if value.dim() != 1 or value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise ValueError(f"{what}: token ids must be non-negative integers (a 1-D integer sequence), "
                         f"got {value.dtype} {tuple(value.shape)}")
    if value.numel() and int(value.min()) < 0:
        raise ValueError(f"{what}: token ids must be non-negative integers, got {int(value.min())}")
    return value.to(torch.long)


def with_bos(ids: torch.Tensor, bos: int) -> torch.Tensor:
    """``ids`` with ``bos`` in front, unless it is there already."""
    if ids.numel() and int(ids[0]) == bos:
        return ids
    return torch.cat([torch.tensor([bos], dtype=torch.long), ids])


def prefix_ids(tokenizer, prefix: Text, template: TemplateLike | None = None, add_bos: bool | None = None) -> torch.Tensor:
    """Prefix ids with the tokenizer's BOS put once at the start (``add_bos=None``: when the tokenizer adds one)."""
    if isinstance(prefix, str):
        if prefix or template is not None:
            ids = token_ids(tokenizer, prefix, "prefix", "prefix", template)
        else:
            ids = torch.zeros(0, dtype=torch.long)
        if tokenizer is None:
            return ids
        bos = bos_id(tokenizer) if add_bos is not False else None
        if add_bos is True and bos is None:
            bos = getattr(tokenizer, "bos_token_id", None)
            if bos is None:
                raise ValueError("add_bos=True but the tokenizer has no bos_token_id")
        return ids if bos is None else with_bos(ids, bos)
    ids = token_ids(tokenizer, prefix, "prefix", "prefix", template)
    if add_bos:
        bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
        if bos is None:
            raise ValueError("add_bos=True needs a tokenizer with a bos_token_id")
        ids = with_bos(ids, bos)
    return ids



def demo_tokenizer(texts: Iterable[str], bos: bool = True):
    """A whitespace word-level tokenizer over the words of ``texts``, built in memory (no downloads).

    Why: demos and tests run offline on tiny random models. Ids 0–3 are ``<pad> <s> </s> <unk>``; with
    ``bos=True`` it prepends ``<s>`` by default, like Llama's tokenizer.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words: dict[str, int] = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>"])}
    for text in texts:
        for word in text.split():
            words.setdefault(word, len(words))
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")
