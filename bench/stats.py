"""Timing helpers: warm up, repeat, summarise in milliseconds."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Seconds in, milliseconds out, rounded for reading."""
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def repeat(
    fn: Callable[[], Any], *, runs: int, warmup: int, cpu: list[float] | None = None
) -> list[float]:
    """Call `fn` `warmup` times untimed, then `runs` times; the wall times in seconds.

    With `cpu`, the CPU time this thread spent in each run is appended to it as well:
    the Python side of a request, which other processes on a busy machine do not
    inflate as much as wall time (database time is not in it).
    """
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.thread_time()
        fn()
        samples.append(time.perf_counter() - started)
        if cpu is not None:
            cpu.append(time.thread_time() - started_cpu)
    return samples


def ratio(value: float, floor: float) -> float | None:
    return round(value / floor, 1) if floor else None


def python_calls(fn: Callable[[], Any], *, runs: int = 20) -> int:
    """Python function calls per call of `fn` (cProfile's count, C functions included):
    exact and the same however loaded the machine is, unlike times."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        fn()
    profiler.disable()
    return round(pstats.Stats(profiler).total_calls / runs)  # type: ignore[attr-defined]
