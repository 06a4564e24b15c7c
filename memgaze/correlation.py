"""Correlation of two samples (numpy only): Pearson r, per pair of rows or of whole arrays, and Spearman ρ
with its bootstrap interval.

The one implementation the accuracy gate, the training metrics and the benchmarks share (the training loss
has its own, differentiable one in torch: :func:`memgaze.train.losses.correlation`). Where scipy returns NaN
with a warning, these give a number, so that a collapsed model's metric is a value to compare, not a
missing one:

- **A constant side** (the product of the two sides' centred sums of squares below :data:`FLAT`: a flat
  heatmap, or one flat but for float32 rounding): 0.0, no correlation; but 1.0 when both sides are flat and
  equal (``np.isclose``): the two agree, e.g. a model's flat map and the FP32 one it reproduces.
- **Ties** (Spearman): average ranks, as ``scipy.stats.rankdata``; a side that is all ties is constant.
- **NaN** anywhere in a pair: NaN, as scipy (the gate then fails; a training monitor counts it as -1).
- **Nothing to correlate** (zero values): NaN. Arrays of different sizes: ValueError.
"""

from __future__ import annotations

import numpy as np

FLAT = 1e-30  # below this product of centred sums of squares (float64), a pair has a constant side


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each pair of rows of two equally shaped arrays ``[N, ...]`` (each row flattened): float64 ``[N]``."""
    x = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    y = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if x.shape != y.shape:
        raise ValueError(f"correlation of arrays of different shapes: {np.shape(a)} and {np.shape(b)}")
    if x.shape[1] == 0:
        return np.full(len(x), np.nan)
    dx = x - x.mean(axis=1, keepdims=True)
    dy = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))
    flat = denom < FLAT  # False for NaN: a NaN stays NaN
    r = np.where(flat, 0.0, (dx * dy).sum(axis=1) / np.where(flat, 1.0, denom))
    return np.where(flat & np.isclose(x, y).all(axis=1), 1.0, r)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two arrays of the same size (flattened)."""
    x, y = _flat_pair(a, b)
    return float(pearson_rows(x[None], y[None])[0])


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of the flattened values, ties given their average rank; all NaN when any value is NaN
    (``scipy.stats.rankdata``'s ``average`` method, ``nan_policy="propagate"``)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(x).any():
        return np.full(len(x), np.nan)
    order = np.argsort(x, kind="mergesort")
    inverse = np.empty(len(x), dtype=np.intp)
    inverse[order] = np.arange(len(x))
    sorted_x = x[order]
    first = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    dense = np.cumsum(first)[inverse]
    bounds = np.r_[np.flatnonzero(first), len(x)]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman ρ: Pearson r of the tie-averaged ranks. A constant side is judged on the values themselves
    (its ranks are all equal whatever they are): 1.0 when both sides are the same constant, else 0.0."""
    x, y = _flat_pair(a, b)
    if x.size and (np.ptp(x) == 0 or np.ptp(y) == 0):
        return pearson(x, y)
    return pearson(rankdata(x), rankdata(y))


def spearman_interval(
    a: np.ndarray, b: np.ndarray, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of Spearman ρ: the pairs resampled with replacement ``resamples`` times
    (``seed`` fixed, so a rerun gives the same interval). How far ρ on these items could move on another
    sample of the same size."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be between 0 and 1, got {level}")
    x, y = _flat_pair(a, b)
    picks = np.random.default_rng(seed).integers(0, x.size, (resamples, x.size))
    values = np.array([spearman(x[p], y[p]) for p in picks])
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _flat_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.ravel(a), np.ravel(b)
    if x.size != y.size:
        raise ValueError(f"correlation of arrays of different sizes: {x.size} and {y.size}")
    return x, y
