"""Interleaved timing: A and B alternate in one process, so both see the same machine load."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(a: Callable[[], object], b: Callable[[], object], reps: int, warmup: int = 1) -> tuple[list, list]:
    """Seconds per call of `a` and of `b`, alternating a, b, b, a, ... after `warmup` untimed calls of each."""
    for _ in range(warmup):
        a()
        b()
    times_a: list[float] = []
    times_b: list[float] = []
    for rep in range(reps):
        order = ((a, times_a), (b, times_b)) if rep % 2 == 0 else ((b, times_b), (a, times_a))
        for fn, out in order:
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return times_a, times_b


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
