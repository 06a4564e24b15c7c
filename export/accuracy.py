"""Output comparisons and the INT8-vs-FP32 accuracy gate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from memgaze.errors import fail

MIN_SPEARMAN = 0.99


def heatmap_cc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation per map of two ``[N, 1, h, w]`` batches (1.0 where both maps are flat and equal)."""
    x = a.reshape(len(a), -1).astype(np.float64)
    y = b.reshape(len(b), -1).astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    flat = denom < 1e-30
    cc = np.where(flat, 0.0, (x * y).sum(axis=1) / np.where(flat, 1.0, denom))
    same = flat & np.all(np.isclose(a.reshape(len(a), -1), b.reshape(len(b), -1)), axis=1)
    return np.where(same, 1.0, cc)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; 1.0 for identical inputs, 0.0 where one side is constant."""
    if np.array_equal(a, b):
        return 1.0
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(stats.spearmanr(a, b).statistic)


@dataclass
class AccuracyReport:
    """INT8 vs FP32 on held-out frames (and vs ground truth where given)."""

    images: int
    spearman: float
    mean_abs_score_diff: float
    max_abs_score_diff: float
    heatmap_cc: float
    heatmap_cc_min: float
    source: str
    threshold: float = MIN_SPEARMAN
    ground_truth: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.spearman >= self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def compare_outputs(
    ref: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], source: str
) -> AccuracyReport:
    """Compare (scores, heatmaps) of a test model against a reference model."""
    cc = heatmap_cc(ref[1], test[1])
    diff = np.abs(ref[0].astype(np.float64) - test[0].astype(np.float64))
    return AccuracyReport(
        images=len(ref[0]), spearman=spearman(ref[0], test[0]), mean_abs_score_diff=float(diff.mean()),
        max_abs_score_diff=float(diff.max()), heatmap_cc=float(cc.mean()), heatmap_cc_min=float(cc.min()),
        source=source,
    )


def ground_truth(scores: dict[str, np.ndarray], truth: np.ndarray) -> dict[str, Any]:
    """Spearman and MSE of each model's scores against ground-truth memorability."""
    return {
        name: {"spearman": spearman(s, truth), "mse": float(np.mean((s - truth) ** 2))} for name, s in scores.items()
    } | {"images": len(truth)}


def gate(report: AccuracyReport, allow_degraded: bool, int8_path: Path) -> None:
    """Refuse a degraded INT8 model unless the user allowed it."""
    if not report.passed and not allow_degraded:
        fail(
            f"INT8 model too far from FP32: Spearman {report.spearman:.4f} < {report.threshold} on "
            f"{report.images} held-out images (heatmap CC {report.heatmap_cc:.4f}); calibrate with more "
            f"or more representative frames, or pass --allow-degraded to keep {int8_path.name}"
        )
