"""Timing harness: statistics on known samples and on callables of known duration."""

from __future__ import annotations

import time

import numpy as np
import pytest

from memgaze.bench.timing import fps, summarize, time_calls, time_interleaved


def test_summarize_known_samples() -> None:
    stats = summarize(np.arange(1, 101, dtype=float))
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p90_ms"] == pytest.approx(90.1)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["mean_ms"] == pytest.approx(50.5)
    assert stats["std_ms"] == pytest.approx(np.arange(1, 101).std())
    with pytest.raises(ValueError):
        summarize([])


def test_fps() -> None:
    assert fps(8, 4.0) == pytest.approx(2000.0)
    assert fps(1, 1000.0) == pytest.approx(1.0)


def _busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


@pytest.mark.parametrize("kind", ["sleep", "busy"])
def test_time_calls_measures_known_duration(kind: str) -> None:
    target_ms = 3.0
    fn = (lambda: time.sleep(target_ms / 1000)) if kind == "sleep" else (lambda: _busy(target_ms))
    samples = time_calls(fn, 20)
    stats = summarize(samples)
    assert samples.shape == (20,)
    assert samples.min() >= target_ms * 0.99  # never shorter than the known duration
    assert stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= samples.max()
    assert stats["mean_ms"] == pytest.approx(target_ms, rel=2.0)  # generous: a loaded CI box is slow
    assert stats["std_ms"] >= 0


def test_time_interleaved_is_round_robin() -> None:
    log: list[str] = []
    fns = {"a": lambda: log.append("a"), "b": lambda: log.append("b")}
    samples = time_interleaved(fns, iters=6, warmup=2, rounds=3)
    assert set(samples) == {"a", "b"}
    assert all(len(v) == 6 for v in samples.values())
    assert log[:4] == ["a", "a", "b", "b"]  # warm-up of each
    assert "".join(log[4:]) == "aabbaabbaabb"  # three rounds of two calls each, alternating


def test_time_interleaved_orders_durations() -> None:
    samples = time_interleaved({"short": lambda: _busy(1.0), "long": lambda: _busy(4.0)}, iters=10, rounds=2)
    assert summarize(samples["short"])["p50_ms"] < summarize(samples["long"])["p50_ms"]
    with pytest.raises(ValueError):
        time_interleaved({"x": lambda: None}, iters=0)
