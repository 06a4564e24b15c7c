"""The one accuracy gate (memgaze.gate): what it refuses, what it lets through, and how it says so."""

from __future__ import annotations

import numpy as np
import pytest

from memgaze.errors import MemgazeError
from memgaze.gate import MIN_SAMPLES, RULE, compare_outputs, enforce_gate


def fp32_outputs(count: int = MIN_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores spread over [0.3, 0.9] and one off-centre blob per map, like a real bundle's FP32 samples."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.3, 0.9, count).astype(np.float32)
    ys, xs = np.mgrid[0:28, 0:28]
    maps = []
    for _ in range(count):
        cy, cx = rng.uniform(4, 24, 2)
        blob = np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * 3.0**2))
        maps.append(blob / blob.sum())
    return scores, np.stack(maps)[:, None].astype(np.float32)


def test_flipped_maps_with_unchanged_scores_are_refused_in_one_line() -> None:
    scores, maps = fp32_outputs()
    report = compare_outputs((scores, maps), (scores, maps[:, :, ::-1, ::-1].copy()), "gate samples")
    assert report.spearman == 1.0 and report.max_abs_score_diff == 0  # the scores alone would pass
    assert not report.passed and report.failures()[0].startswith("heatmap CC ")
    with pytest.raises(MemgazeError) as caught:
        enforce_gate(report, "TensorRT plan model.plan", False, "try --precision fp16 or fp32")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("TensorRT plan model.plan is too far from FP32: heatmap CC ")
    assert f"< {RULE.min_heatmap_cc}" in message and "worst heatmap CC" in message and "Spearman 1.0000" in message


def test_two_nearly_tied_scores_swapped_pass() -> None:
    scores, maps = fp32_outputs()
    scores[1] = scores[0] + 1e-4  # two frames the FP32 model scores almost alike
    swapped = scores.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    report = compare_outputs((scores, maps), (swapped, maps + 1e-7), "gate samples")
    assert report.spearman < 1.0 and report.passed, report.line()


def test_scores_that_keep_their_order_but_move_far_are_refused() -> None:
    scores, maps = fp32_outputs()
    shifted = scores + 0.8 * scores.std()  # same order, every score moved by most of the spread
    report = compare_outputs((scores, maps), (shifted, maps), "gate samples")
    assert report.spearman == 1.0 and not report.passed
    assert [f.split(" ")[0] for f in report.failures()] == ["max"]  # named: the largest score difference


def test_a_reordered_model_is_refused_and_allow_degraded_keeps_it_with_one_warning(capsys: pytest.CaptureFixture[str]) -> None:
    scores, maps = fp32_outputs()
    report = compare_outputs((scores, maps), (scores[::-1].copy(), maps), "held-out frames")
    assert not report.passed and report.failures()[0].startswith("Spearman ")
    enforce_gate(report, "INT8 model model.int8.onnx", True, "calibrate with more frames")
    err = capsys.readouterr().err.strip()
    assert err.startswith("warning: INT8 model model.int8.onnx kept despite Spearman ") and err.endswith("(--allow-degraded)")
    assert "\n" not in err and report.as_dict()["passed"] is False and report.as_dict()["failed"] == report.failures()


def test_a_nan_never_passes() -> None:
    scores, maps = fp32_outputs()
    broken = scores.copy()
    broken[3] = np.nan
    assert not compare_outputs((scores, maps), (broken, maps), "frames").passed
    broken_maps = maps.copy()
    broken_maps[2] = np.nan
    assert not compare_outputs((scores, maps), (scores, broken_maps), "frames").passed


def test_the_same_outputs_pass_every_figure() -> None:
    scores, maps = fp32_outputs()
    report = compare_outputs((scores, maps), (scores.copy(), maps.copy()), "frames")
    assert report.passed and report.failures() == [] and report.score_shift == 0.0
    assert report.line().startswith("Spearman 1.0000, max |Δscore| 0.0000 (0.00 of the spread), heatmap CC 1.0000")
