"""Latency of a simultaneous stream: Average Lagging (AL) and Length-Adaptive AL (LAAL), SimulEval's formulas.

``delays[i]`` is how many source units (words) were in when target unit ``i`` was written; ``|X|`` the source
length. With ``γ = |Y| / |X|`` and ``τ`` the first target unit written once the whole source was in,

    AL = (1/τ) Σ_{i=1..τ} ( d_i − (i − 1) / γ )

AL takes ``|Y|`` as the reference length when one is given (else the hypothesis length); LAAL takes
``max(|hypothesis|, |reference|)``, so an over-long output is not rewarded with a lower lag.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["average_lagging", "al", "laal", "delays_from_trace"]


def average_lagging(delays: Sequence[float], source_length: float, target_length: float) -> float:
    """The AL sum with ``γ = target_length / source_length`` (both AL and LAAL are this with another length)."""
    if not delays:
        raise ValueError("latency needs at least one written unit (delays is empty)")
    if source_length <= 0 or target_length <= 0:
        raise ValueError(f"latency needs positive lengths, got source {source_length}, target {target_length}")
    if delays[0] > source_length:
        return float(delays[0])
    gamma = target_length / source_length
    total, tau = 0.0, 0
    for i, d in enumerate(delays):
        if d > source_length:
            break
        total += d - i / gamma
        tau = i + 1
        if d == source_length:
            break
    return total / tau


def al(delays: Sequence[float], source_length: float, reference_length: float | None = None) -> float:
    """Average Lagging: γ from the reference length, or from the hypothesis length without one."""
    return average_lagging(delays, source_length, reference_length if reference_length else len(delays))


def laal(delays: Sequence[float], source_length: float, reference_length: float | None = None) -> float:
    """Length-Adaptive Average Lagging: γ from ``max(len(delays), reference_length)``."""
    return average_lagging(delays, source_length, max(len(delays), reference_length or 0))


def delays_from_trace(steps: Sequence[str], source_length: int | None = None) -> list[int]:
    """Per write, the number of reads before it (capped at ``source_length``, e.g. to leave out an end tag)."""
    delays, n_read = [], 0
    for step in steps:
        if step == "read":
            n_read += 1
        elif step == "write":
            delays.append(n_read if source_length is None else min(n_read, source_length))
        else:
            raise ValueError(f"a trace holds 'read' / 'write' steps, got {step!r}")
    return delays
