"""RAG front-end: plans for parallel-encoded contexts (APE) and Graph-KV chunk graphs.

Every function here builds a :class:`~structlm.plan.Plan` and nothing else; the runtime
(``structlm.hf.StructuredLM``) executes it, and APE's attention re-weighting lives in
``structlm.hf.attention.APE``. Nothing in this module imports the runtime.

Layouts (P = prefix length, Lᵢ = length of context / chunk i):

* :func:`parallel` (APE, PCW): prefix at ``0..P-1``; every context at ``P..P+Lᵢ-1`` seeing the prefix and
  itself; the query at ``P + max Lᵢ`` seeing everything. Each context's keys depend only on the prefix and its
  own tokens, so a context encoded once is reusable by every later query under the same prefix.
* :func:`sequential`: the ordinary concatenation ``prefix, context₀, context₁, …, query``, for comparison.
* :func:`graph_kv` (Graph-KV): chunks with ``(source, target)`` edges; a target sees its sources (and the
  prefix). Chunks without sources share ``[P, P+Lᵢ)``; a target starts right after its longest source; a chunk
  whose sources are themselves targets lands in a later round. The query sees everything and sits after all.

Text handling: strings are tokenized with ``add_special_tokens=False`` everywhere, so no BOS lands inside a
context or before the query; the tokenizer's BOS (when it adds one by default) is put once at the very start of
the prefix. Token-id lists are used as they are (``tokenizer`` may then be ``None``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, Union

import torch

from structlm.plan import Plan, PlanError, Segment

__all__ = [
    "Template",
    "parallel",
    "sequential",
    "graph_kv",
    "graph_kv_rag",
    "ego_graphs",
    "citation",
    "graph_kv_rounds",
    "context_names",
    "demo_tokenizer",
]

Text = Union[str, Sequence[int], torch.Tensor]
TemplateLike = Union["Template", Callable[[str, str], str]]

PREFIX = "prefix"
QUERY = "query"


# --------------------------------------------------------------------------------------------- templates
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


def _apply_template(template: TemplateLike | None, part: str, text: str) -> str:
    if template is None:
        return text
    if not callable(template):
        raise TypeError(f"template must be a Template or a callable (part, text) -> text, "
                        f"got {type(template).__name__}")
    out = template(part, text)
    if not isinstance(out, str):
        raise TypeError(f"template returned {type(out).__name__} for part {part!r}; it must return a string")
    return out


# --------------------------------------------------------------------------------------------- tokens
def _bos_id(tokenizer) -> int | None:
    """The BOS id when the tokenizer prepends one by default (Llama, Gemma…), else None (Qwen2, GPT-2…)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    try:
        ids = tokenizer.encode("a", add_special_tokens=True)
    except Exception:  # pragma: no cover - exotic tokenizers
        return None
    return bos if ids[:1] == [bos] else None


def _ids(tokenizer, value: Text, part: str, what: str, template: TemplateLike | None) -> torch.Tensor:
    """Token ids [L] (long) of one part: strings through the template and the tokenizer without special tokens."""
    if isinstance(value, str):
        if tokenizer is None:
            raise ValueError(f"{what} is text but no tokenizer was given; pass a tokenizer or token ids")
        text = _apply_template(template, part, value)
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


def _with_bos(ids: torch.Tensor, bos: int) -> torch.Tensor:
    if ids.numel() and int(ids[0]) == bos:
        return ids
    return torch.cat([torch.tensor([bos], dtype=torch.long), ids])


def _prefix_ids(tokenizer, prefix: Text, template: TemplateLike | None, add_bos: bool | None) -> torch.Tensor:
    """Prefix ids with the tokenizer's BOS put once at the start (``add_bos=None``: when the tokenizer adds one)."""
    if isinstance(prefix, str):
        if prefix or template is not None:
            ids = _ids(tokenizer, prefix, "prefix", "prefix", template)
        else:
            ids = torch.zeros(0, dtype=torch.long)
        if tokenizer is None:
            return ids
        bos = _bos_id(tokenizer) if add_bos is not False else None
        if add_bos is True and bos is None:
            bos = getattr(tokenizer, "bos_token_id", None)
            if bos is None:
                raise ValueError("add_bos=True but the tokenizer has no bos_token_id")
        return ids if bos is None else _with_bos(ids, bos)
    ids = _ids(tokenizer, prefix, "prefix", "prefix", template)
    if add_bos:
        bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
        if bos is None:
            raise ValueError("add_bos=True needs a tokenizer with a bos_token_id")
        ids = _with_bos(ids, bos)
    return ids


def _names(names: Sequence[str] | None, count: int, default: str) -> list[str]:
    if names is None:
        return [f"{default}{i}" for i in range(count)]
    names = list(names)
    if len(names) != count:
        raise ValueError(f"{len(names)} names for {count} {default}s; give one name per {default}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{default} names must be non-empty strings, got {name!r}")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate {default} names {dupes}")
    clash = {PREFIX, QUERY} & set(names)
    if clash:
        raise ValueError(f"{default} names {sorted(clash)} are reserved for the prefix and the query segments")
    return names


def _sequence_arg(values, what: str) -> list:
    if isinstance(values, (str, torch.Tensor)):
        raise TypeError(f"{what} must be a list of texts or token-id lists, not a single {type(values).__name__}")
    return list(values)


# --------------------------------------------------------------------------------------------- APE layouts
def _parts(tokenizer, contexts, query, prefix, template, add_bos, names, default="context"):
    contexts = _sequence_arg(contexts, "contexts")
    prefix_ids = _prefix_ids(tokenizer, prefix, template, add_bos)
    context_ids = []
    for i, ctx in enumerate(contexts):
        ids = _ids(tokenizer, ctx, "context", f"{default} {i}", template)
        if ids.numel() == 0:
            raise ValueError(f"{default} {i} is empty after tokenization; drop it or give it some text")
        context_ids.append(ids)
    query_ids = _ids(tokenizer, query, "query", "query", template)
    if query_ids.numel() == 0:
        raise ValueError("the query is empty after tokenization; the query segment needs at least one token")
    return prefix_ids, context_ids, query_ids, _names(names, len(context_ids), default)


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
    prefix_ids, context_ids, query_ids, names = _parts(tokenizer, contexts, query, prefix, template, add_bos, names)
    plan = Plan()
    base = []
    if prefix_ids.numel():
        plan.add(Segment(PREFIX, input_ids=prefix_ids, role="prefix"))
        base = [PREFIX]
    p = len(prefix_ids)
    for name, ids in zip(names, context_ids):
        plan.add(Segment(name, input_ids=ids, start=p, role="context"), sees=base)
    longest = max((len(ids) for ids in context_ids), default=0)
    plan.add(Segment(QUERY, input_ids=query_ids, start=p + longest, role="query"), sees=base + names)
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
    prefix_ids, context_ids, query_ids, names = _parts(tokenizer, contexts, query, prefix, template, add_bos, names)
    plan = Plan()
    earlier: list[str] = []
    position = 0
    if prefix_ids.numel():
        plan.add(Segment(PREFIX, input_ids=prefix_ids, role="prefix"))
        earlier.append(PREFIX)
        position = len(prefix_ids)
    for name, ids in zip(names, context_ids):
        plan.add(Segment(name, input_ids=ids, start=position, role="context"), sees=list(earlier))
        earlier.append(name)
        position += len(ids)
    plan.add(Segment(QUERY, input_ids=query_ids, start=position, role="query"), sees=list(earlier))
    return plan


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


def context_names(plan: Plan, roles: Iterable[str] = ("context", "source", "target")) -> list[str]:
    """Names of the plan's context-like segments, in plan order (what a cache keeps across queries)."""
    roles = set(roles)
    return [s.name for s in plan if s.role in roles]


# --------------------------------------------------------------------------------------------- Graph-KV
def graph_kv_rounds(num_chunks: int, edges: Iterable[tuple[int, int]]) -> list[int]:
    """Round of each chunk: 0 without sources, else 1 + the largest round among its sources.

    Why: Graph-KV re-encodes a target on top of its sources' keys, so a target whose sources are targets of an
    earlier round must wait for them (multi-hop chains). Raises ``PlanError`` on cycles and bad edges.
    """
    sources: list[set[int]] = [set() for _ in range(num_chunks)]
    for edge in edges:
        try:
            source, target = edge
        except (TypeError, ValueError):
            raise ValueError(f"an edge is a (source, target) pair of chunk indices, got {edge!r}") from None
        for end in (source, target):
            if isinstance(end, bool) or not isinstance(end, int) or not 0 <= end < num_chunks:
                raise ValueError(f"edge {edge!r}: chunk indices must be integers in [0, {num_chunks})")
        if source == target:
            raise ValueError(f"edge {edge!r} is a self-loop: a chunk always sees itself; drop the edge")
        sources[target].add(source)
    rounds: list[int | None] = [None] * num_chunks
    state = [0] * num_chunks  # 0 new, 1 on the stack, 2 done
    for root in range(num_chunks):
        if state[root]:
            continue
        stack = [(root, iter(sorted(sources[root])))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                rounds[node] = 1 + max((rounds[s] for s in sources[node]), default=-1)
                state[node] = 2
            elif state[nxt] == 1:
                cycle = [n for n, _ in stack][[n for n, _ in stack].index(nxt):] + [nxt]
                raise PlanError(
                    "Graph-KV edges form a cycle (" + " <- ".join(map(str, cycle)) + "): a target is encoded on top "
                    "of its sources, so the graph must be acyclic. For 'every chunk both source and target' use "
                    "graph_kv_rag(..., top_m='full'), which encodes a second copy of each chunk as the target"
                )
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(sources[nxt]))))
    return [int(r) for r in rounds]  # type: ignore[arg-type]


def graph_kv(
    tokenizer,
    chunks: Sequence[Text],
    edges: Iterable[tuple[int, int]],
    query: Text,
    prefix: Text = "",
    names: Sequence[str] | None = None,
    spacing: str = "tight",
    template: TemplateLike | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """Graph-KV layout: ``(source, target)`` edges let a target see its sources; positions by rounds.

    * round 0 (chunks without sources) share ``[P, P + Lᵢ)`` (role ``source``) and see the prefix;
    * a target (role ``target``) sees the prefix and its sources — their single copy, which for a source that is
      itself a target is its updated, round-t encoding (multi-hop chains);
    * ``spacing="tight"`` (default): a target starts right after its longest source,
      ``start(t) = max over sources s of (start(s) + L_s)`` — for one round ``P + max L_source``, the official
      citation-graph rule; ``spacing="rounds"``: the paper's formula, round t at ``P + t·L`` with L the longest
      chunk. Both agree when chunks have equal length (round t at ``[P + tL, P + (t+1)L)``).
    * the query (role ``query``) sees every segment and starts after the largest position used.

    Segments are ordered by round, then by chunk index (a target always comes after what it sees).
    Names default to ``chunk{i}``.
    """
    if spacing not in ("tight", "rounds"):
        raise ValueError(f"spacing must be 'tight' or 'rounds', got {spacing!r}")
    prefix_ids, chunk_ids, query_ids, names = _parts(
        tokenizer, chunks, query, prefix, template, add_bos, names, default="chunk"
    )
    edges = list(edges)
    rounds = graph_kv_rounds(len(chunk_ids), edges)
    sources: list[list[int]] = [[] for _ in chunk_ids]
    for source, target in edges:
        if source not in sources[target]:
            sources[target].append(source)
    p = len(prefix_ids)
    longest = max((len(ids) for ids in chunk_ids), default=0)
    starts: list[int] = [0] * len(chunk_ids)
    order = sorted(range(len(chunk_ids)), key=lambda i: (rounds[i], i))
    for i in order:
        if spacing == "rounds":
            starts[i] = p + rounds[i] * longest
        else:
            starts[i] = max((starts[s] + len(chunk_ids[s]) for s in sources[i]), default=p)
    plan = Plan()
    base = []
    if prefix_ids.numel():
        plan.add(Segment(PREFIX, input_ids=prefix_ids, role="prefix"))
        base = [PREFIX]
    for i in order:
        role = "source" if rounds[i] == 0 else "target"
        seen = base + [names[s] for s in sorted(sources[i], key=lambda s: (rounds[s], s))]
        plan.add(Segment(names[i], input_ids=chunk_ids[i], start=starts[i], role=role), sees=seen)
    end = max((starts[i] + len(chunk_ids[i]) for i in order), default=p)
    plan.add(Segment(QUERY, input_ids=query_ids, start=end, role="query"), sees=base + [names[i] for i in order])
    return plan


def graph_kv_rag(
    tokenizer,
    chunks: Sequence[Text],
    query: Text,
    top_m: int | Sequence[int] | str = 1,
    prefix: Text = "",
    scores: Sequence[float] | None = None,
    spacing: str = "tight",
    template: TemplateLike | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """Graph-KV's RAG variants over retrieved chunks (no native graph).

    Ranking: by ``scores`` (higher = better) when given, else the list order is taken as ascending relevance,
    the paper's convention (the best chunk last). Variants:

    * ``top_m=m`` (1 or 3 in the paper): the m best chunks are sources; every other chunk is a target of all m;
    * ``top_m=[m₁, m₂, …]``: a multi-hop chain (paper A.1.2), e.g. ``[1, 3]`` = Top-1 → Top-2..4 → rest, each
      group the targets of the previous group and the sources of the next;
    * ``top_m="full"``: every chunk is both — round-0 copies ``chunk{i}`` (sources) and round-1 copies
      ``chunk{i}.target`` that see every round-0 copy (their own included, as in the official code).
    """
    chunks = _sequence_arg(chunks, "chunks")
    n = len(chunks)
    if n == 0:
        raise ValueError("graph_kv_rag needs at least one chunk")
    if scores is not None:
        scores = list(scores)
        if len(scores) != n:
            raise ValueError(f"{len(scores)} scores for {n} chunks")
        ranking = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    else:
        ranking = list(reversed(range(n)))
    names = [f"chunk{i}" for i in range(n)]
    if isinstance(top_m, str):
        if top_m != "full":
            raise ValueError(f"top_m must be an int, a list of group sizes or 'full', got {top_m!r}")
        edges = [(i, n + j) for i in range(n) for j in range(n)]
        return graph_kv(
            tokenizer, list(chunks) + list(chunks), edges, query, prefix=prefix,
            names=names + [f"{name}.target" for name in names], spacing=spacing, template=template, add_bos=add_bos,
        )
    groups = [top_m] if isinstance(top_m, int) and not isinstance(top_m, bool) else list(top_m)
    if not groups or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in groups):
        raise ValueError(f"top_m group sizes must be positive integers, got {top_m!r}")
    if sum(groups) >= n:
        raise ValueError(f"top_m={top_m!r} uses {sum(groups)} chunks as sources but there are only {n}; "
                         "at least one chunk must remain a target")
    layers: list[list[int]] = []
    at = 0
    for g in groups:
        layers.append(ranking[at:at + g])
        at += g
    layers.append(ranking[at:])
    edges = [(s, t) for upper, lower in zip(layers, layers[1:]) for s in upper for t in lower]
    return graph_kv(tokenizer, chunks, edges, query, prefix=prefix, names=names, spacing=spacing,
                    template=template, add_bos=add_bos)


def ego_graphs(
    tokenizer,
    graphs: Sequence[tuple[Text, Sequence[Text]]],
    query: Text,
    prefix: Text = "",
    spacing: str = "tight",
    template: TemplateLike | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """Citation ego-graphs: in each ``(centre, references)`` pair the references are sources of the centre.

    Several ego-graphs (the relevant one plus distractors) share the same position ranges, so their order in
    the list does not change attention. Names: ``g{k}.ref{j}`` and ``g{k}.centre``.
    """
    graphs = _sequence_arg(graphs, "graphs")
    if not graphs:
        raise ValueError("ego_graphs needs at least one (centre, references) pair")
    chunks: list[Text] = []
    names: list[str] = []
    edges: list[tuple[int, int]] = []
    for k, pair in enumerate(graphs):
        try:
            centre, references = pair
        except (TypeError, ValueError):
            raise ValueError(f"graph {k} must be a (centre, references) pair") from None
        references = _sequence_arg(references, f"references of graph {k}")
        first = len(chunks)
        for j, ref in enumerate(references):
            chunks.append(ref)
            names.append(f"g{k}.ref{j}")
        chunks.append(centre)
        names.append(f"g{k}.centre")
        edges += [(first + j, len(chunks) - 1) for j in range(len(references))]
    return graph_kv(tokenizer, chunks, edges, query, prefix=prefix, names=names, spacing=spacing,
                    template=template, add_bos=add_bos)


def citation(
    tokenizer,
    centre: Text,
    references: Sequence[Text],
    query: Text,
    prefix: Text = "",
    spacing: str = "tight",
    template: TemplateLike | None = None,
    add_bos: bool | None = None,
) -> Plan:
    """One citation ego-graph: references → centre paper; the query sees all (see :func:`ego_graphs`)."""
    return ego_graphs(tokenizer, [(centre, references)], query, prefix=prefix, spacing=spacing,
                      template=template, add_bos=add_bos)

