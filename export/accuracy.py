"""The INT8-vs-FP32 gate's refusal and ground-truth scores (the comparison itself is :mod:`memgaze.gate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from memgaze.errors import fail
from memgaze.correlation import spearman
from memgaze.gate import AccuracyReport


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
