"""Shared by the benchmarks: wall time, process CPU time and peak memory growth of one call.

Memory on CPU is the RSS high-water mark above the RSS at the start of the call, with the mark reset through
Linux's ``/proc/self/clear_refs`` first; on CUDA it is ``torch.cuda.max_memory_allocated`` growth.
"""
from __future__ import annotations

import time
from typing import Any, Callable


def rss_kib(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in KiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def timed(fn: Callable[[], Any], device: str = "cpu") -> tuple[Any, float, float, int]:
    """``(result, wall seconds, CPU seconds, peak extra bytes)`` of ``fn()``."""
    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        before = rss_kib("VmRSS") * 1024
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    if cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = (torch.cuda.max_memory_allocated() if cuda else rss_kib("VmHWM") * 1024) - before
    return result, wall, cpu, max(0, peak)
