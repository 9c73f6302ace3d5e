"""Plans: segments of tokens with positions, and who may see whom.

A Plan is structure, not tensors for one backend. It costs O(tokens + segments + edges); the compile targets
in ``structlm.masks`` turn it into a mask function, dense masks, a FlexAttention BlockMask or a KV-reuse
schedule, each on demand.

Visibility rule, for a query token ``q`` in segment ``A`` and a key token ``k`` in segment ``B``::

    allowed(q, k) = (A == B and (not A.causal or k <= q))  or  (A -> B is an edge)
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import torch

from structlm.errors import PlanError
from structlm.masks import block_mask, dense_mask, plan_mask_function
from structlm.schedule import schedule
from structlm.segment import Segment

__all__ = ["Segment", "Plan", "PlanError"]

JSON_FORMAT = "structlm.plan"
JSON_VERSION = 1


class Plan:
    """Ordered segments (their order is the physical token order) plus ``viewer -> viewed`` edges."""

    def __init__(
        self,
        segments: Iterable[Segment] = (),
        edges: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._segments: list[Segment] = []
        self._index: dict[str, int] = {}
        self._sees: dict[str, list[str]] = {}
        self._derived: dict[str, Any] = {}
        for segment in segments:
            self.add(segment)
        for viewer, viewed in edges:
            self.add_edge(viewer, viewed)

    # ----------------------------------------------------------------------------------------- building
    def add(self, segment: Segment, sees: Iterable[str] = ()) -> Segment:
        """Append a segment (after all earlier ones) and let it see the named segments."""
        if not isinstance(segment, Segment):
            raise PlanError(f"Plan.add takes a Segment, got {type(segment).__name__}")
        if segment.name in self._index:
            raise PlanError(f"duplicate segment name {segment.name!r}: names must be unique in a plan")
        sees = [sees] if isinstance(sees, str) else list(sees)
        self._check_names(sees, viewer=segment.name, pending=segment.name)
        self._index[segment.name] = len(self._segments)
        self._segments.append(segment)
        self._sees[segment.name] = []
        self._derived.clear()
        for viewed in sees:
            self.add_edge(segment.name, viewed)
        return segment

    def add_edge(self, viewer: str, viewed: str) -> None:
        """Every token of ``viewer`` sees every token of ``viewed``."""
        self._check_names([viewer, viewed], viewer=viewer)
        if viewer == viewed:
            raise PlanError(
                f"segment {viewer!r} cannot see itself through an edge: its own visibility is its causal flag"
            )
        if viewed not in self._sees[viewer]:
            self._sees[viewer].append(viewed)
            self._derived.clear()

    def see(self, viewer: str, viewed: Iterable[str] | str) -> None:
        """Add several edges from one viewer."""
        for name in [viewed] if isinstance(viewed, str) else viewed:
            self.add_edge(viewer, name)

    def _check_names(self, names: Iterable[str], viewer: str, pending: str | None = None) -> None:
        for name in names:
            if name == pending:
                raise PlanError(
                    f"segment {name!r} cannot see itself through an edge: its own visibility is its causal flag"
                )
            if name not in self._index:
                known = ", ".join(repr(n) for n in self._index) or "none yet"
                raise PlanError(f"edge from {viewer!r} names unknown segment {name!r} (known: {known})")

    # ----------------------------------------------------------------------------------------- access
    @property
    def segments(self) -> list[Segment]:
        """The segments in physical token order (a copy of the list)."""
        return list(self._segments)

    @property
    def names(self) -> list[str]:
        """Segment names in physical token order."""
        return [segment.name for segment in self._segments]

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Every ``(viewer, viewed)`` edge, viewers in plan order."""
        return [(viewer, viewed) for viewer in self.names for viewed in self._sees[viewer]]

    def sees(self, name: str) -> list[str]:
        """The segments ``name`` sees through edges, in plan order."""
        if name not in self._index:
            raise PlanError(f"unknown segment {name!r}")
        return sorted(self._sees[name], key=self._index.__getitem__)

    def __getitem__(self, name: str) -> Segment:
        if name not in self._index:
            raise PlanError(f"unknown segment {name!r} (known: {', '.join(self.names)})")
        return self._segments[self._index[name]]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self):
        return iter(self._segments)

    def __len__(self) -> int:
        """Number of tokens."""
        return int(self._offsets()[-1])

    @property
    def num_segments(self) -> int:
        """Number of segments (``len(plan)`` counts tokens)."""
        return len(self._segments)

    def index(self, name: str) -> int:
        """Position of segment ``name`` in the plan's order."""
        return self._index[name]

    # ----------------------------------------------------------------------------------------- derived
    def _cached(self, key: str, build):
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    def _offsets(self) -> torch.Tensor:
        def build():
            lengths = torch.tensor([len(s) for s in self._segments], dtype=torch.long)
            return torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])

        return self._cached("offsets", build)

    @property
    def offsets(self) -> torch.Tensor:
        """``[S + 1]`` token offsets: segment ``i`` covers ``offsets[i]:offsets[i+1]``."""
        return self._offsets()

    @property
    def spans(self) -> dict[str, tuple[int, int]]:
        """Segment name -> ``(start, end)`` token range in the physical order."""

        def build():
            offsets = self._offsets().tolist()
            return {s.name: (offsets[i], offsets[i + 1]) for i, s in enumerate(self._segments)}

        return dict(self._cached("spans", build))

    @property
    def segment_ids(self) -> torch.Tensor:
        """``[N]`` index of each token's segment."""

        def build():
            lengths = torch.diff(self._offsets())
            return torch.repeat_interleave(torch.arange(len(self._segments)), lengths)

        return self._cached("segment_ids", build)

    @property
    def causal_flags(self) -> torch.Tensor:
        """``[S]`` bool: the intra-segment rule of each segment."""
        return self._cached("causal", lambda: torch.tensor([s.causal for s in self._segments], dtype=torch.bool))

    @property
    def adjacency(self) -> torch.Tensor:
        """``[S, S]`` bool: ``adjacency[i, j]`` when segment i sees segment j through an edge (no diagonal)."""

        def build():
            n = len(self._segments)
            adj = torch.zeros(n, n, dtype=torch.bool)
            if n:
                pairs = [(self._index[a], self._index[b]) for a, b in self.edges]
                if pairs:
                    idx = torch.tensor(pairs, dtype=torch.long)
                    adj[idx[:, 0], idx[:, 1]] = True
            return adj

        return self._cached("adjacency", build)

    @property
    def has_soft_tokens(self) -> bool:
        """True when some segment holds embeddings instead of token ids."""
        return any(s.is_soft for s in self._segments)

    @property
    def input_ids(self) -> torch.Tensor:
        """``[1, N]`` token ids; a plan with soft tokens has none — use ``inputs_embeds``."""
        if self.has_soft_tokens:
            soft = [s.name for s in self._segments if s.is_soft]
            raise PlanError(f"plan has soft-token segments {soft}: use plan.inputs_embeds(embedding_layer)")
        self._require_segments()
        return torch.cat([s.input_ids for s in self._segments])[None]

    @property
    def position_ids(self) -> torch.Tensor:
        """``[1, N]`` positions (long, or float where a segment asked for fractional positions)."""
        self._require_segments()

        def build():
            parts = [s.positions for s in self._segments]
            if any(p.is_floating_point() for p in parts):
                dtype = torch.float64 if any(p.dtype == torch.float64 for p in parts) else torch.float32
                parts = [p.to(dtype) for p in parts]
            return torch.cat(parts)[None]

        return self._cached("position_ids", build)

    @property
    def token_type_ids(self) -> torch.Tensor | None:
        """``[1, N]`` token types (segments without one count as 0), or None when no segment sets one."""
        self._require_segments()

        def build():
            if all(s.token_type is None for s in self._segments):
                return None
            lengths = torch.diff(self._offsets())
            types = torch.tensor([s.token_type or 0 for s in self._segments], dtype=torch.long)
            return torch.repeat_interleave(types, lengths)[None]

        return self._cached("token_type_ids", build)

    def inputs_embeds(self, embedding_layer: torch.nn.Module, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``[1, N, H]``: token ids through ``embedding_layer``, soft tokens as they are, in plan order."""
        self._require_segments()
        weight = getattr(embedding_layer, "weight", None)
        device = weight.device if weight is not None else torch.device("cpu")
        hidden = weight.shape[1] if weight is not None else None
        dtype = dtype or (weight.dtype if weight is not None else torch.float32)
        parts = []
        for segment in self._segments:
            if segment.is_soft:
                if hidden is not None and segment.embeds.shape[1] != hidden:
                    raise PlanError(
                        f"segment {segment.name!r} has embeds of width {segment.embeds.shape[1]}, "
                        f"but the model's embeddings are {hidden} wide; project the soft tokens to {hidden}"
                    )
                parts.append(segment.embeds.to(device=device, dtype=dtype))
            else:
                parts.append(embedding_layer(segment.input_ids.to(device)).to(dtype))
        return torch.cat(parts)[None]

    def _require_segments(self) -> None:
        if not self._segments:
            raise PlanError("the plan has no segments")

    def last_segment(self) -> Segment:
        """The physically last segment: generation continues after it."""
        self._require_segments()
        return self._segments[-1]

    # ----------------------------------------------------------------------------------------- compile
    def mask_function(self):
        """``fn(b, h, q_idx, kv_idx) -> bool``: the plan's rule as a FlexAttention / transformers mask_mod."""
        return plan_mask_function(self)

    def dense_mask(self, kind: str = "bool", dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """``[1, 1, N, N]``: bool (True = attend) for sdpa, or additive float (0 / finfo.min) for eager."""
        return dense_mask(self, kind=kind, dtype=dtype, device=device)

    def block_mask(self, block_size: int = 128, device=None, mask_mod=None):
        """A FlexAttention BlockMask built from segment ranges (no N x N evaluation)."""
        return block_mask(self, block_size=block_size, device=device, refine=mask_mod)

    def schedule(self) -> list[list[str]]:
        """Segments grouped in dependency levels: each segment comes after every segment it sees."""
        return schedule(self)

    def is_acyclic(self) -> bool:
        """True when segments can be encoded one after another (the KV-reuse backend applies)."""
        try:
            self.schedule()
        except PlanError:
            return False
        return True

    # ----------------------------------------------------------------------------------------- copies
    def copy(self) -> "Plan":
        """A new plan with the same segments and edges (segments are shared, they are not mutated)."""
        return Plan(self._segments, self.edges)

    def subplan(self, names: Iterable[str]) -> "Plan":
        """The named segments (in plan order) with the edges among them."""
        keep = set(names)
        for name in keep:
            self[name]
        segments = [s for s in self._segments if s.name in keep]
        edges = [(a, b) for a, b in self.edges if a in keep and b in keep]
        return Plan(segments, edges)

    # ----------------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        """A JSON-ready dict: format and version, segments (ids or embeds, positions, rule), edges."""
        segments = []
        for s in self._segments:
            entry: dict[str, Any] = {"name": s.name, "role": s.role, "causal": s.causal}
            if s.is_soft:
                entry["embeds"] = s.embeds.detach().to(torch.float64).tolist()
                entry["embeds_dtype"] = str(s.embeds.dtype).removeprefix("torch.")
            else:
                entry["input_ids"] = s.input_ids.tolist()
            entry["positions"] = s.positions.tolist()
            entry["positions_dtype"] = str(s.positions.dtype).removeprefix("torch.")
            if s.token_type is not None:
                entry["token_type"] = s.token_type
            segments.append(entry)
        return {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "segments": segments,
            "edges": [list(e) for e in self.edges],
        }

    def to_json(self, indent: int | None = None) -> str:
        """The plan as JSON text; ``Plan.from_json`` reads it back (validated)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Plan":
        """Build a plan from ``to_dict`` output, checking every field (``PlanError`` on a malformed one)."""
        if not isinstance(data, Mapping):
            raise PlanError(f"a plan file holds a JSON object, got {type(data).__name__}")
        if data.get("format") != JSON_FORMAT:
            raise PlanError(f"not a structlm plan: 'format' is {data.get('format')!r}, expected {JSON_FORMAT!r}")
        version = data.get("version")
        if version != JSON_VERSION or type(version) is not int:  # not true, not 1.0
            raise PlanError(f"plan file version {version!r} is not supported (this structlm reads {JSON_VERSION})")
        unknown = set(data) - {"format", "version", "segments", "edges"}
        if unknown:
            raise PlanError(f"the plan file has unknown fields {sorted(map(str, unknown))}; a plan holds format, "
                            f"version, segments and edges")
        segments_data = data.get("segments")
        edges_data = data.get("edges", [])
        if not isinstance(segments_data, list) or not isinstance(edges_data, list):
            raise PlanError("a plan file needs a 'segments' list and an 'edges' list")
        plan = cls()
        for i, entry in enumerate(segments_data):
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise PlanError(f"segment #{i} in the plan file is not an object with a 'name'")
            unknown = set(entry) - {"name", "role", "causal", "input_ids", "embeds", "embeds_dtype", "positions", "positions_dtype",
                                   "token_type"}
            if unknown:
                raise PlanError(f"segment #{i} ({entry['name']!r}) has unknown fields {sorted(unknown)}")
            try:
                plan.add(_segment_from_dict(entry))
            except PlanError:
                raise
            except (TypeError, ValueError, RuntimeError, RecursionError) as error:
                raise PlanError(f"segment #{i} in the plan file is malformed: {error}") from error
        for edge in edges_data:
            if not (isinstance(edge, (list, tuple)) and len(edge) == 2 and all(isinstance(n, str) for n in edge)):
                raise PlanError(f"an edge must be [viewer, viewed] names, got {edge!r}")
            plan.add_edge(edge[0], edge[1])
        return plan

    @classmethod
    def from_json(cls, text: str | bytes) -> "Plan":
        """Read a plan written by ``to_json``; a malformed file raises ``PlanError``, never ``KeyError``."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise PlanError(f"the plan is not valid JSON: {error}") from error
        except RecursionError:
            raise PlanError("the plan is not a plan file: its JSON is nested too deeply to read (a plan nests "
                            "four levels)") from None
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return (
            self.names == other.names
            and all(a.same_content(b) for a, b in zip(self._segments, other._segments))
            and sorted(self.edges) == sorted(other.edges)
        )

    __hash__ = None  # plans are mutable

    # ----------------------------------------------------------------------------------------- text
    def __repr__(self) -> str:
        roles: dict[str, int] = {}
        for s in self._segments:
            roles[s.role] = roles.get(s.role, 0) + 1
        role_text = ", ".join(f"{count} {role}" for role, count in roles.items())
        return f"Plan({len(self)} tokens, {len(self._segments)} segments ({role_text}), {len(self.edges)} edges)"

    def describe(self, max_segments: int = 40) -> str:
        """One line per segment: span, positions, intra rule, what it sees."""
        lines = []
        spans = self.spans
        for s in self._segments[:max_segments]:
            start, end = spans[s.name]
            sees = ", ".join(self.sees(s.name)) or "-"
            lines.append(f"{s!r} tokens [{start}, {end}) sees: {sees}")
        if len(self._segments) > max_segments:
            lines.append(f"... {len(self._segments) - max_segments} more segments")
        return "\n".join(lines)

    def mask_string(self, max_tokens: int = 64) -> str:
        """The token mask as text ('#' attend, '.' not), for small plans."""
        if len(self) > max_tokens:
            return f"(mask of {len(self)} tokens not printed; limit {max_tokens})"
        dense = self.dense_mask("bool")[0, 0]
        seg = self.segment_ids.tolist()
        return "\n".join(
            f"{seg[i]:>3} " + "".join("#" if v else "." for v in row) for i, row in enumerate(dense.tolist())
        )

    def show(self, path: str | None = None, **kwargs):
        """A picture of the plan (mask and positions); see ``structlm.viz.show_plan``."""
        from structlm.viz import show_plan

        return show_plan(self, path, **kwargs)


def _segment_from_dict(entry: Mapping) -> Segment:
    """One segment of a plan file, every field type-checked (JSON has no tensors, so nothing is coerced)."""
    name = entry["name"]
    causal, role = entry.get("causal", True), entry.get("role", "text")
    if not isinstance(causal, bool):
        raise PlanError(f"segment {name!r}: causal must be true or false, got {causal!r}")
    if not isinstance(role, str):
        raise PlanError(f"segment {name!r}: role must be a string, got {role!r}")
    for values in (entry.get("input_ids"), entry.get("positions")):
        huge = [v for v in values if isinstance(v, int) and not -2**63 <= v < 2**63] if isinstance(values, list) else []
        if huge:
            raise PlanError(f"segment {name!r}: {str(huge[0])[:40]} does not fit in 64 bits; token ids and "
                            f"positions are int64")
    embeds = None
    if entry.get("embeds") is not None:
        embeds = torch.tensor(entry["embeds"], dtype=_dtype(entry.get("embeds_dtype", "float32")))
    positions = entry.get("positions")
    if positions is not None:
        dtype = _dtype(entry.get("positions_dtype", "int64"))
        loose = (float, bool) if not dtype.is_floating_point else (bool,)  # torch would round or count them
        if not isinstance(positions, list) or any(isinstance(v, loose) for v in positions):
            raise PlanError(f"segment {name!r}: positions must be a list of {dtype} numbers "
                            f"(positions_dtype), got {str(positions)[:80]}")
        positions = torch.tensor(positions, dtype=dtype)
    ids = entry.get("input_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in ids)):
        raise PlanError(f"segment {name!r}: input_ids must be a list of integers")
    return Segment(name, input_ids=ids, embeds=embeds, positions=positions, causal=causal, role=role,
                   token_type=entry.get("token_type"))


def _dtype(name: Any) -> torch.dtype:
    allowed = {"float16", "bfloat16", "float32", "float64", "int64", "int32"}
    if name not in allowed:
        raise PlanError(f"unsupported dtype {name!r} in plan file (one of {sorted(allowed)})")
    return getattr(torch, name)
