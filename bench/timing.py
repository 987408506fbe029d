"""Timing helper shared by the bench scripts."""

from __future__ import annotations

import statistics
import time


def median_ms(fn, repeats: int = 100, warmup: int = 10) -> float:
    """Median wall time of `fn()` in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
