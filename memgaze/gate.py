"""The accuracy gate: one rule, for the export (INT8 ONNX vs FP32) and the device (a TensorRT plan vs the FP32 outputs
stored in the bundle), judging what a user sees: the order of the scores, how far any score moved, and the maps.

numpy only, so ``memgaze-export``, ``memgaze-engine``, ``memgaze-run`` and ``memgaze-checks`` judge with the same
code on any machine. The thresholds of :data:`RULE` come from measured INT8-vs-FP32 distributions (``memgaze-bench
gate``; docs/export.md, "The accuracy gate"): each is the worst value a good file showed on any 32-frame subset of
real held-out frames, with a margin.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from memgaze.console import console
from memgaze.correlation import pearson_rows, spearman
from memgaze.errors import fail

MIN_SAMPLES = 32  # frames every gate judges on (the bundle's gate samples hold at least this many)


@dataclass(frozen=True)
class GateRule:
    """The thresholds a model must hold against FP32 on the same frames."""

    min_spearman: float  # rank agreement of the scores
    max_score_shift: float  # largest |Δscore| as a fraction of the FP32 scores' standard deviation
    min_heatmap_cc: float  # mean Pearson CC of the heatmaps
    min_heatmap_cc_worst: float  # the worst frame's heatmap CC

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


RULE = GateRule(min_spearman=0.95, max_score_shift=0.6, min_heatmap_cc=0.98, min_heatmap_cc_worst=0.85)


@dataclass
class AccuracyReport:
    """A model vs FP32 on the same frames (and vs ground truth where given), judged by ``rule``."""

    images: int
    spearman: float
    mean_abs_score_diff: float
    max_abs_score_diff: float
    score_spread: float  # standard deviation of the FP32 scores
    heatmap_cc: float
    heatmap_cc_min: float
    source: str
    rule: GateRule = RULE
    ground_truth: dict[str, Any] | None = None

    @property
    def score_shift(self) -> float:
        """The largest score difference as a fraction of the FP32 scores' spread (inf when they do not spread)."""
        if self.score_spread > 0:
            return self.max_abs_score_diff / self.score_spread
        return 0.0 if self.max_abs_score_diff == 0 else float("inf")

    def figures(self) -> dict[str, tuple[float, float, str]]:
        """Each judged figure: ``{name: (value, threshold, "≥" or "≤")}``."""
        rule = self.rule
        return {
            "Spearman": (self.spearman, rule.min_spearman, "≥"),
            "max |Δscore|/spread": (self.score_shift, rule.max_score_shift, "≤"),
            "heatmap CC": (self.heatmap_cc, rule.min_heatmap_cc, "≥"),
            "worst heatmap CC": (self.heatmap_cc_min, rule.min_heatmap_cc_worst, "≥"),
        }

    def failures(self) -> list[str]:
        """The figures outside the rule (a NaN fails), e.g. ``["heatmap CC 0.4120 < 0.98"]``."""
        failed = []
        for name, (value, threshold, sense) in self.figures().items():
            ok = value >= threshold if sense == "≥" else value <= threshold
            if not ok:
                failed.append(f"{name} {value:.4f} {'<' if sense == '≥' else '>'} {threshold}")
        return failed

    @property
    def passed(self) -> bool:
        return not self.failures()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score_shift": self.score_shift, "passed": self.passed, "failed": self.failures()}

    def line(self) -> str:
        """Every figure: ``Spearman 0.9981, max |Δscore| 0.0042 (0.08 of the spread), heatmap CC 0.9990 (worst 0.9931) on 32 frames``."""
        return (f"Spearman {self.spearman:.4f}, max |Δscore| {self.max_abs_score_diff:.4f} ({self.score_shift:.2f} of the "
                f"spread), heatmap CC {self.heatmap_cc:.4f} (worst {self.heatmap_cc_min:.4f}) on {self.images} {self.source}")

    def shortfall(self) -> str:
        """What failed, then every figure: ``heatmap CC 0.4120 < 0.98; Spearman 1.0000, ...``."""
        return f"{'; '.join(self.failures())} ({self.line()})"


def enforce_gate(report: AccuracyReport, model: str, allow_degraded: bool, remedy: str) -> None:
    """Nothing when ``model`` (e.g. ``"INT8 model model.int8.onnx"``) passed the gate. When it failed: a one-line
    refusal that names the failed figures, ``remedy`` and ``--allow-degraded``, or, with ``allow_degraded``, one
    warning line that it is kept."""
    if report.passed:
        return
    if not allow_degraded:
        fail(f"{model} is too far from FP32: {report.shortfall()}; {remedy}, or pass --allow-degraded to keep it")
    console.print(f"[yellow]warning:[/yellow] {model} kept despite {report.shortfall()} (--allow-degraded)", soft_wrap=True)


def compare_outputs(
    ref: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], source: str, rule: GateRule | None = None,
) -> AccuracyReport:
    """Compare (scores, heatmaps) of a test model against a reference model's on the same frames, judged by ``rule``
    (default :data:`RULE`)."""
    cc = pearson_rows(ref[1], test[1])
    reference = ref[0].astype(np.float64)
    diff = np.abs(reference - test[0].astype(np.float64))
    return AccuracyReport(
        images=len(ref[0]), spearman=spearman(ref[0], test[0]), mean_abs_score_diff=float(diff.mean()),
        max_abs_score_diff=float(diff.max()), score_spread=float(reference.std()), heatmap_cc=float(cc.mean()),
        heatmap_cc_min=float(cc.min()), source=source, rule=rule or RULE,
    )
