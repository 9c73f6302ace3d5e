"""Dependency levels and the cycle finder: the order in which segments (or chunks) can be encoded.

Why one module: the KV-reuse backend, ``Plan.schedule`` and Graph-KV's rounds all ask the same question —
"encode each node after everything it depends on" — and must name a real cycle when there is none.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Hashable, Mapping, Sequence

from structlm.errors import CycleError

if TYPE_CHECKING:  # pragma: no cover - annotations only; plan imports this module, never the reverse
    from structlm.plan import Plan

__all__ = ["dependency_levels", "find_cycle", "schedule"]


def find_cycle(nodes: Sequence[Hashable], deps: Mapping[Hashable, Sequence[Hashable]]) -> list:
    """One cycle of the graph ``node -> deps[node]``, as ``[a, b, …, a]`` (empty when acyclic); iterative DFS."""
    state = {node: 0 for node in nodes}  # 0 new, 1 on the stack, 2 done
    for root in nodes:
        if state[root]:
            continue
        stack = [(root, iter(deps[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            for child in children:
                if state[child] == 1:
                    return path[path.index(child):] + [child]
                if state[child] == 0:
                    state[child] = 1
                    stack.append((child, iter(deps[child])))
                    path.append(child)
                    break
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return []


def dependency_levels(nodes: Sequence[Hashable], deps: Mapping[Hashable, Sequence[Hashable]]) -> dict:
    """Level of each node: 0 without dependencies, else 1 + the largest level among them (Kahn's algorithm).

    Raises :class:`CycleError` (``.cycle`` holds one cycle) when the dependencies are cyclic.
    """
    remaining = {node: len(deps[node]) for node in nodes}
    dependants: dict = {node: [] for node in nodes}
    for node in nodes:
        for dep in deps[node]:
            dependants[dep].append(node)
    level = {node: 0 for node in nodes if remaining[node] == 0}
    frontier = list(level)
    while frontier:
        following = []
        for node in frontier:
            for dependant in dependants[node]:
                remaining[dependant] -= 1
                level[dependant] = max(level.get(dependant, 0), level[node] + 1)
                if remaining[dependant] == 0:
                    following.append(dependant)
        frontier = following
    if any(remaining.values()):
        cycle = find_cycle(nodes, deps)
        raise CycleError("dependencies are cyclic (" + " -> ".join(map(str, cycle)) + ")", cycle)
    return level


def schedule(plan: "Plan") -> list[list[str]]:
    """Dependency levels for KV reuse: level k holds segments whose seen segments all lie in levels < k.

    A segment's keys and values depend only on itself and the segments it sees, so each level can be encoded
    as prefills on caches holding exactly what each segment sees. Within a level, plan order is kept.
    """
    names = plan.names
    try:
        level = dependency_levels(names, {name: plan.sees(name) for name in names})
    except CycleError as error:
        raise CycleError(
            "visibility is cyclic (" + " -> ".join(error.cycle) + "), so segments cannot be encoded one after "
            "another for KV reuse; use backend='dense' or 'flex', or remove an edge of the cycle",
            error.cycle,
        ) from None
    levels: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name in names:
        levels[level[name]].append(name)
    return levels
