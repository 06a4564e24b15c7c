"""The accuracy gate: a model's outputs against FP32 reference outputs (Spearman of scores, heatmap CC, both
from :mod:`memgaze.correlation`).

numpy only, so the export (INT8 ONNX vs FP32), ``memgaze-engine`` and ``memgaze-run`` (a TensorRT
plan vs the FP32 outputs stored in the bundle) judge with the same code on any machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from memgaze.console import console
from memgaze.correlation import pearson_rows, spearman
from memgaze.errors import fail

MIN_SPEARMAN = 0.99


@dataclass
class AccuracyReport:
    """A model vs FP32 on held-out frames (and vs ground truth where given)."""

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

    def line(self) -> str:
        """``Spearman 0.9981, heatmap CC 0.9990 on 8 held-out frames``."""
        return f"Spearman {self.spearman:.4f}, heatmap CC {self.heatmap_cc:.4f} on {self.images} {self.source}"

    def shortfall(self) -> str:
        """``Spearman 0.9512 < 0.99 (heatmap CC 0.9871) on 8 held-out frames``."""
        return (f"Spearman {self.spearman:.4f} < {self.threshold} (heatmap CC {self.heatmap_cc:.4f}) "
                f"on {self.images} {self.source}")


def enforce_gate(report: AccuracyReport, model: str, allow_degraded: bool, remedy: str) -> None:
    """Nothing when ``model`` (e.g. ``"INT8 model model.int8.onnx"``) passed the gate. When it failed: a one-line
    refusal that names ``remedy`` and ``--allow-degraded``, or, with ``allow_degraded``, one warning line that it
    is kept."""
    if report.passed:
        return
    if not allow_degraded:
        fail(f"{model} is too far from FP32: {report.shortfall()}; {remedy}, or pass --allow-degraded to keep it")
    console.print(f"[yellow]warning:[/yellow] {model} kept despite {report.shortfall()} (--allow-degraded)", soft_wrap=True)


def compare_outputs(
    ref: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], source: str
) -> AccuracyReport:
    """Compare (scores, heatmaps) of a test model against a reference model."""
    cc = pearson_rows(ref[1], test[1])
    diff = np.abs(ref[0].astype(np.float64) - test[0].astype(np.float64))
    return AccuracyReport(
        images=len(ref[0]), spearman=spearman(ref[0], test[0]), mean_abs_score_diff=float(diff.mean()),
        max_abs_score_diff=float(diff.max()), heatmap_cc=float(cc.mean()), heatmap_cc_min=float(cc.min()),
        source=source,
    )
