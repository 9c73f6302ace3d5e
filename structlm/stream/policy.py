"""Read/write policies: when a stream reads the next source chunk and when it writes the next target chunk.

A policy is any callable ``(n_read, n_written) -> "read" | "write"``: ``n_read`` source chunks are in (the
prompt aside), ``n_written`` target chunks are out. Chunks are whatever unit the caller splits by (words, in the
GPE paper). The same callable drives the batch plan (:func:`structlm.stream.plan`) and a live session
(``structlm.hf.StreamSession``), which is what makes the two comparable number for number.

* :class:`WaitK` — the classic wait-k: write target chunk ``j`` (0-based) once ``k + j`` source chunks are in.
* :class:`Replay` — a recorded sequence of actions played back (a session's trace as a policy).
* :func:`actions` — the read/write sequence a policy makes over given numbers of chunks (source exhausted → write).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

from structlm.errors import PlanError

__all__ = ["READ", "WRITE", "Policy", "WaitK", "Replay", "check_policy", "decide", "actions"]

READ = "read"
WRITE = "write"
Policy = Callable[[int, int], str]


@dataclass(frozen=True)
class WaitK:
    """Wait-k: read ``k`` source chunks, then alternate one write and one read (``g(j) = k + j`` chunks in)."""

    k: int

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise PlanError(f"WaitK needs k >= 1 source chunks before the first write, got {self.k!r}")

    def __call__(self, n_read: int, n_written: int) -> str:
        return WRITE if n_read >= self.k + n_written else READ


class Replay:
    """A fixed sequence of ``"read"`` / ``"write"`` actions as a policy: step ``n_read + n_written`` of it.

    Why: a session's trace (or any interleaving a test draws) becomes a policy, so the batch plan can be built
    under exactly what happened. Past the end of the sequence it writes.
    """

    def __init__(self, steps: Sequence[str]) -> None:
        steps = list(steps)
        bad = [s for s in steps if s not in (READ, WRITE)]
        if bad:
            raise PlanError(f"Replay takes 'read' / 'write' steps, got {bad[0]!r}")
        self.steps = steps

    def __call__(self, n_read: int, n_written: int) -> str:
        step = n_read + n_written
        return self.steps[step] if step < len(self.steps) else WRITE

    def __repr__(self) -> str:
        return "Replay(" + "".join("r" if s == READ else "w" for s in self.steps) + ")"


def check_policy(policy: Union[Policy, int]) -> Policy:
    """A policy callable; an int ``k`` means ``WaitK(k)``."""
    if isinstance(policy, int) and not isinstance(policy, bool):
        return WaitK(policy)
    if not callable(policy):
        raise PlanError(f"a policy is WaitK(k) or a callable (n_read, n_written) -> 'read' | 'write', "
                        f"got {type(policy).__name__}")
    return policy


def decide(policy: Policy, n_read: int, n_written: int) -> str:
    """The policy's answer, checked: exactly ``"read"`` or ``"write"``."""
    action = policy(n_read, n_written)
    if action not in (READ, WRITE):
        raise PlanError(f"policy {policy!r} answered {action!r} at (n_read={n_read}, n_written={n_written}); "
                        f"a policy answers 'read' or 'write'")
    return action


def actions(policy: Policy, n_source: int, n_target: int) -> list[str]:
    """The actions that write ``n_target`` chunks: the policy's, except that an exhausted source forces a write.

    A write before any source chunk is read is refused: a stream has nothing to write from yet.
    """
    policy = check_policy(policy)
    steps: list[str] = []
    n_read = n_written = 0
    while n_written < n_target:
        action = WRITE if n_read == n_source else decide(policy, n_read, n_written)
        if action == WRITE and n_read == 0:
            raise PlanError("the policy writes before any source chunk is read; read at least one chunk first "
                            "(WaitK(k) needs k >= 1)" if n_source else "the stream has no source chunks to read")
        steps.append(action)
        if action == READ:
            n_read += 1
        else:
            n_written += 1
    return steps
