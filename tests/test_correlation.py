"""memgaze.correlation, the one numpy correlation of the gate, the training metrics and the benchmarks:
scipy's answers where scipy gives one (ties averaged), and the documented edge cases where scipy gives NaN."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from memgaze.correlation import pearson, pearson_rows, rankdata, spearman, spearman_interval
from memgaze.gate import compare_outputs


def test_pearson_spearman_and_ranks_match_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    b = 0.5 * a + rng.normal(size=200)
    ties_a, ties_b = np.round(a), np.round(b * 2) / 2  # many ties
    for x, y in ((a, b), (ties_a, ties_b), (a, ties_b), (rng.integers(0, 5, 40).astype(float), rng.random(40))):
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
        assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    np.testing.assert_allclose(rankdata(ties_a), stats.rankdata(ties_a))
    np.testing.assert_array_equal(rankdata([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])


def test_rows_are_each_a_pearson_r() -> None:
    rng = np.random.default_rng(1)
    maps = rng.random((5, 1, 6, 7)).astype(np.float32)
    other = maps + rng.normal(scale=0.3, size=maps.shape).astype(np.float32)
    expected = [stats.pearsonr(m.ravel(), o.ravel()).statistic for m, o in zip(maps, other)]
    np.testing.assert_allclose(pearson_rows(maps, other), expected, atol=1e-12)
    np.testing.assert_allclose(pearson_rows(maps, maps), 1.0)
    np.testing.assert_allclose(pearson_rows(maps, -maps), -1.0)


def test_a_constant_side_is_no_correlation_where_scipy_says_nan() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's ConstantInputWarning
        assert np.isnan(stats.spearmanr(np.ones(5), np.arange(5)).statistic)
    assert spearman(np.ones(5), np.arange(5.0)) == 0.0 and pearson(np.ones(5), np.arange(5.0)) == 0.0
    assert spearman(np.full(5, 2.0), np.ones(5)) == 0.0 and pearson(np.full(5, 2.0), np.ones(5)) == 0.0  # two other constants
    assert spearman(np.ones(5), np.ones(5)) == 1.0 and pearson(np.ones(5), np.ones(5)) == 1.0  # the same constant: they agree
    flat = np.full((1, 8, 8), 1 / 64, np.float32)
    rounded = flat.copy()
    rounded[0, 3, 4] = np.nextafter(rounded[0, 3, 4], np.float32(1))  # flat but for float32 rounding
    assert pearson_rows(flat, rounded)[0] == 1.0
    assert pearson_rows(flat, np.random.default_rng(2).random((1, 8, 8)))[0] == 0.0


def test_nan_gives_nan_and_the_gate_fails_on_it() -> None:
    scores = np.linspace(0.1, 0.9, 9)
    broken = scores.copy()
    broken[-1] = np.nan  # ranked as the largest value, a NaN would leave ρ at 1.0
    assert np.isnan(stats.spearmanr(scores, broken).statistic)
    assert np.isnan(spearman(scores, broken)) and np.isnan(pearson(scores, broken)) and np.isnan(rankdata(broken)).all()
    maps = np.random.default_rng(3).random((3, 1, 4, 4))
    bad = maps.copy()
    bad[1, 0, 2, 2] = np.nan
    cc = pearson_rows(maps, bad)
    assert cc[0] == pytest.approx(1.0) and np.isnan(cc[1]) and cc[2] == pytest.approx(1.0)  # only that row
    report = compare_outputs((scores, maps), (broken, maps), "frames")
    assert not report.passed  # a NaN score is never within the gate


def test_nothing_to_correlate_and_mismatched_sizes() -> None:
    assert np.isnan(pearson(np.array([]), np.array([]))) and np.isnan(spearman(np.array([]), np.array([])))
    with pytest.raises(ValueError, match="different sizes"):
        spearman(np.arange(3.0), np.arange(4.0))
    with pytest.raises(ValueError, match="different shapes"):
        pearson_rows(np.zeros((2, 3)), np.zeros((2, 4)))


def test_spearman_interval_is_scipys_percentile_bootstrap_and_narrows_with_more_items() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=1400)
    b = a + rng.normal(scale=0.6, size=1400)
    small = spearman_interval(a[:140], b[:140])
    low, high = small
    assert low < spearman(a[:140], b[:140]) < high

    def rho(x: np.ndarray, y: np.ndarray) -> float:
        return float(stats.spearmanr(x, y).statistic)
    scipy_ci = stats.bootstrap((a[:140], b[:140]), rho, paired=True, vectorized=False, method="percentile",
                               n_resamples=2000, random_state=np.random.default_rng(3)).confidence_interval
    assert low == pytest.approx(scipy_ci.low, abs=0.015) and high == pytest.approx(scipy_ci.high, abs=0.015)
    large = spearman_interval(a, b)
    assert large[1] - large[0] < 0.5 * (high - low)  # ten times the items: about a third of the width
    assert spearman_interval(a[:140], b[:140]) == small  # seeded: a rerun gives the same interval
    with pytest.raises(ValueError, match="level"):
        spearman_interval(a, b, level=95)
