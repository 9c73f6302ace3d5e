"""APE / PCW parallel encoding and its sequential counterpart, as Plans.

Layouts (P = prefix length, Lᵢ = length of context i):

* :func:`parallel` (APE, PCW): prefix at ``0..P-1``; every context at ``P..P+Lᵢ-1`` seeing the prefix and
  itself (a :func:`~structlm.layouts.shared_start`); the query at ``P + max Lᵢ`` seeing everything. Each
  context's keys depend only on the prefix and its own tokens, so a context encoded once is reusable by every
  later query under the same prefix.
* :func:`sequential`: the ordinary concatenation ``prefix, context₀, context₁, …, query`` (a
  :func:`~structlm.layouts.chain`), for comparison.

Text handling (:mod:`structlm.text`): strings are tokenized with ``add_special_tokens=False`` everywhere, so no
BOS lands inside a context or before the query; the tokenizer's BOS (when it adds one by default) is put once at
the very start of the prefix. Token-id lists are used as they are (``tokenizer`` may then be ``None``).
"""
from __future__ import annotations

from typing import Iterable, Sequence

from structlm.layouts import chain, shared_start
from structlm.plan import Plan
from structlm.rag.prompt import prompt_parts
from structlm.text import Text, TemplateLike

__all__ = ["parallel", "sequential", "context_names"]


def parallel(
    tokenizer,
    contexts: Sequence[Text],
    query: Text,
    prefix: Text = "",
    template: TemplateLike | None = None,
    names: Sequence[str] | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """APE / PCW layout: contexts share one position range after the prefix; the query sees all.

    Why: each context's keys then depend only on the prefix and itself — encode once, reuse for any query —
    and the positions used are ``P + max Lᵢ + Lq`` whatever the number of contexts.
    Segments: ``prefix`` (role ``prefix``, when non-empty), ``context{i}`` (role ``context``, sees the prefix),
    ``query`` (role ``query``, sees every segment).
    """
    prompt = prompt_parts(tokenizer, contexts, query, prefix, template, add_bos, names)
    plan = Plan()
    start = chain(plan, [prompt.prefix_part()] if prompt.base else [])
    end = shared_start(plan, prompt.items, start=start, sees=prompt.base)
    chain(plan, [prompt.query_part()], start=end, sees=plan.names)
    return plan


def sequential(
    tokenizer,
    contexts: Sequence[Text],
    query: Text,
    prefix: Text = "",
    template: TemplateLike | None = None,
    names: Sequence[str] | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """The ordinary concatenation: every segment sees all earlier ones at consecutive positions.

    Same segments, names, roles and tokens as :func:`parallel`, so the two plans compare one to one; its logits
    equal the model run on ``prefix + contexts + query`` token ids the ordinary way.
    """
    prompt = prompt_parts(tokenizer, contexts, query, prefix, template, add_bos, names)
    plan = Plan()
    chain(plan, ([prompt.prefix_part()] if prompt.base else []) + prompt.items + [prompt.query_part()])
    return plan


def context_names(plan: Plan, roles: Iterable[str] = ("context", "source", "target")) -> list[str]:
    """Names of the plan's context-like segments, in plan order (what a cache keeps across queries)."""
    roles = set(roles)
    return [s.name for s in plan if s.role in roles]
