"""Per-stage timings in ring buffers, percentiles with numpy, and a frame-rate meter."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import numpy as np

STAGES = ("capture", "pre", "infer", "post", "sink")


class StageTimes:
    """The last ``capacity`` durations (seconds) of each stage."""

    def __init__(self, stages: tuple[str, ...] = STAGES, capacity: int = 2048) -> None:
        self.stages = stages
        self._buffers = {stage: np.zeros(capacity, np.float64) for stage in stages}
        self._counts = dict.fromkeys(stages, 0)
        self._capacity = capacity

    def add(self, stage: str, seconds: float) -> None:
        """Record one duration of ``stage``."""
        self._buffers[stage][self._counts[stage] % self._capacity] = seconds
        self._counts[stage] += 1

    @contextlib.contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Time the ``with`` block as one sample of ``stage``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def samples(self, stage: str) -> np.ndarray:
        """The recorded durations of ``stage`` still in the ring (seconds)."""
        return self._buffers[stage][: min(self._counts[stage], self._capacity)]

    def percentiles_ms(self, stage: str, qs: tuple[float, ...] = (50, 99)) -> tuple[float, ...]:
        """Percentiles of ``stage`` in milliseconds (NaN when no sample)."""
        data = self.samples(stage)
        if data.size == 0:
            return tuple(float("nan") for _ in qs)
        return tuple(float(v) * 1000.0 for v in np.percentile(data, qs))


class RateMeter:
    """Frames per second over a sliding window of recent timestamps."""

    def __init__(self, window: int = 30) -> None:
        self._stamps = np.zeros(window, np.float64)
        self._count = 0

    def tick(self, now: float | None = None) -> float:
        """Record a frame; returns the current rate."""
        self._stamps[self._count % self._stamps.size] = time.perf_counter() if now is None else now
        self._count += 1
        return self.rate

    @property
    def rate(self) -> float:
        n = min(self._count, self._stamps.size)
        if n < 2:
            return 0.0
        newest = self._stamps[(self._count - 1) % self._stamps.size]
        oldest = self._stamps[(self._count - n) % self._stamps.size]
        return (n - 1) / (newest - oldest) if newest > oldest else 0.0
