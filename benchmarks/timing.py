"""Timing harness: wall-clock samples of callables and their summary statistics (numpy)."""

from __future__ import annotations

import time
from typing import Callable, Hashable, Mapping, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


def summarize(samples_ms: np.ndarray | list[float]) -> dict[str, float]:
    """p50/p90/p99, mean and std (population) of latency samples in milliseconds."""
    data = np.asarray(samples_ms, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no timing samples to summarize")
    p50, p90, p99 = np.percentile(data, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(data.mean()),
        "std_ms": float(data.std()),
    }


def fps(batch: int, mean_ms: float) -> float:
    """Frames per second for ``batch`` frames per call taking ``mean_ms`` on average."""
    return batch * 1000.0 / mean_ms


def time_calls(fn: Callable[[], object], iters: int) -> np.ndarray:
    """Milliseconds taken by each of ``iters`` calls of ``fn``."""
    out = np.empty(iters, dtype=np.float64)
    for i in range(iters):
        start = time.perf_counter_ns()
        fn()
        out[i] = (time.perf_counter_ns() - start) / 1e6
    return out


def time_interleaved(
    fns: Mapping[K, Callable[[], object]], iters: int, warmup: int = 0, rounds: int = 1
) -> dict[K, np.ndarray]:
    """Time several callables round-robin so they share the machine's conditions.

    Each callable is warmed up ``warmup`` times, then ``rounds`` rounds each run every
    callable for its share of ``iters`` calls in turn; returns ``iters`` samples (ms) each.
    """
    if iters < 1 or rounds < 1 or warmup < 0:
        raise ValueError("iters and rounds must be >= 1 and warmup >= 0")
    rounds = min(rounds, iters)
    shares = [iters // rounds + (1 if r < iters % rounds else 0) for r in range(rounds)]
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[K, list[np.ndarray]] = {key: [] for key in fns}
    for share in shares:
        for key, fn in fns.items():
            samples[key].append(time_calls(fn, share))
    return {key: np.concatenate(parts) for key, parts in samples.items()}
