"""Score and saliency metrics vs scipy and small cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from memgaze.correlation import pearson
from memgaze.metrics import auc_judd, kld, map_metrics, mse, nss, pairwise_accuracy, sauc, score_metrics, sim


def test_score_metrics_by_hand() -> None:
    # pred [0.1, 0.5, 0.9], target [0.2, 0.4, 1.0]: same order → spearman 1;
    # errors -0.1, 0.1, -0.1 → squares 0.01 each → mse = 0.01.
    out = score_metrics(np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.4, 1.0]))
    assert out["spearman"] == pytest.approx(1.0)
    assert out["mse"] == pytest.approx(0.01)
    assert mse(np.zeros(4), np.full(4, 2.0)) == pytest.approx(4.0)
    # A constant prediction has no defined correlation: reported as 0.0, never NaN.
    assert score_metrics(np.ones(5), np.arange(5.0))["spearman"] == 0.0


def test_nss_by_hand() -> None:
    # pred = [[0, 0], [0, 4]]: mean 1; deviations -1,-1,-1,3 → sum of squares 12, /(4-1) = 4,
    # std 2. z = [[-0.5, -0.5], [-0.5, 1.5]].
    pred = np.array([[0.0, 0.0], [0.0, 4.0]])
    assert nss(pred, np.array([[False, False], [False, True]])) == pytest.approx(1.5)
    assert nss(pred, np.array([[True, False], [False, False]])) == pytest.approx(-0.5)
    assert nss(pred, np.array([[True, False], [False, True]])) == pytest.approx(0.5)  # mean(-0.5, 1.5)
    with pytest.raises(ValueError):
        nss(pred, np.zeros((2, 2), bool))


def test_kld_sim_by_hand() -> None:
    # KLD: pred [1,1] → [0.5,0.5]; gt [1,0] → [1,0]; 1*log(1/0.5) + 0 = log 2.
    assert kld(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(math.log(2))
    assert kld(np.array([0.2, 0.8]), np.array([2.0, 8.0])) == pytest.approx(0.0, abs=1e-12)
    # SIM: pred [0,1,1,2] → min-max [0,.5,.5,1] → /2 = [0,.25,.25,.5];
    # gt [0,0,1,1] → [0,0,.5,.5]; min = [0,0,.25,.5] → 0.75.
    assert sim(np.array([0.0, 1, 1, 2]), np.array([0.0, 0, 1, 1])) == pytest.approx(0.75)
    assert sim(np.array([3.0, 1.0]), np.array([3.0, 1.0])) == pytest.approx(1.0)


def test_auc_judd_by_hand() -> None:
    # s = [0.1, 0.4, 0.35, 0.8], fixations at 0.8 and 0.35 (2 of 4 pixels).
    # threshold 0.8: 1 pixel >= → tp 1/2, fp (1-1)/2 = 0; threshold 0.35: 3 pixels >= → tp 1,
    # fp (3-2)/2 = 0.5. ROC (0,0) (0,.5) (.5,1) (1,1): area 0 + 0.5*1.5/2 + 0.5*2/2 = 0.875.
    s = np.array([[0.1, 0.4], [0.35, 0.8]])
    fix = np.array([[False, False], [True, True]])
    assert auc_judd(s, fix) == pytest.approx(0.875)
    # A constant map: its one threshold keeps all pixels → ROC (0,0) (1,1) (1,1) → 0.5.
    assert auc_judd(np.ones((3, 3)), np.eye(3, dtype=bool)) == pytest.approx(0.5)
    assert auc_judd(fix.astype(float), fix) == pytest.approx(1.0)


def _auc_judd_loop(s: np.ndarray, fix: np.ndarray) -> float:
    """Line-by-line port of AUC_Judd.m (without jitter), as an independent reference."""
    s, f = s.ravel(), fix.ravel()
    sth = np.sort(s[f])[::-1]
    n_fix, n_pix = len(sth), len(s)
    tp, fp = [0.0], [0.0]
    for i, thresh in enumerate(sth, start=1):
        above = np.sum(s >= thresh)
        tp.append(i / n_fix)
        fp.append((above - i) / (n_pix - n_fix))
    tp.append(1.0)
    fp.append(1.0)
    return float(np.trapezoid(tp, fp))


def test_auc_judd_matches_reference_loop_and_batch_helper() -> None:
    rng = np.random.default_rng(1)
    pred = rng.random((3, 8, 8))
    fix = rng.random((3, 8, 8)) > 0.85
    gt = rng.random((3, 8, 8))
    for p, f in zip(pred, fix):
        assert auc_judd(p, f) == pytest.approx(_auc_judd_loop(p, f))
    fix[2] = False  # a map without fixations is left out of NSS/AUC
    out = map_metrics(pred, gt, fix)
    assert out["auc_judd"] == pytest.approx(np.mean([auc_judd(pred[i], fix[i]) for i in range(2)]))
    assert out["nss"] == pytest.approx(np.mean([nss(pred[i], fix[i]) for i in range(2)]))
    assert out["cc"] == pytest.approx(np.mean([pearson(pred[i], gt[i]) for i in range(3)]))
    assert out["kld"] == pytest.approx(np.mean([kld(pred[i], gt[i]) for i in range(3)]))
    assert out["sim"] == pytest.approx(np.mean([sim(pred[i], gt[i]) for i in range(3)]))
    assert set(map_metrics(pred, gt)) == {"cc", "kld", "sim"}


def test_pairwise_accuracy_by_hand() -> None:
    reference = np.array([0.1, 0.2, 0.3, 0.3])  # 5 ordered pairs (the 0.3/0.3 tie is left out)
    assert pairwise_accuracy(reference * 2, reference) == 1.0
    assert pairwise_accuracy(-reference, reference) == 0.0
    # pairs 0-1 and 0-2 swapped, pair 1-2 tied in the prediction: (2 + 0.5) / 5
    assert pairwise_accuracy(np.array([0.2, 0.1, 0.1, 0.5]), reference) == pytest.approx(0.5)
    assert pairwise_accuracy(np.array([0.2, 0.1, 0.3, 0.4]), reference) == pytest.approx(4 / 5)
    assert math.isnan(pairwise_accuracy(np.array([1.0, 2.0]), np.array([0.5, 0.5])))


def test_sauc_by_hand() -> None:
    # s = [[0.1, 0.4], [0.35, 0.8]]; fixations here at 0.8 and 0.35; other images fixated 0.4 and 0.35.
    # Pairs (pos, neg): (0.8, 0.4) 1, (0.8, 0.35) 1, (0.35, 0.4) 0, (0.35, 0.35) tie 0.5 → 2.5 / 4 = 0.625.
    s = np.array([[0.1, 0.4], [0.35, 0.8]])
    here = np.array([[False, False], [True, True]])
    other = np.array([[False, True], [True, False]])
    assert sauc(s, here, other) == pytest.approx(0.625)
    # a pure centre bias scores 0.5 when this image and the others are fixated in the same places
    centre = np.zeros((5, 5))
    centre[2, 2] = 1.0
    spot = centre.astype(bool)
    assert sauc(centre, spot, spot) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        sauc(s, here, np.zeros((2, 2), bool))


def test_map_metrics_against_independent_implementations() -> None:
    """sAUC against scikit-learn's ROC AUC, KLD against scipy's relative entropy (both MIT-style eps-free on
    strictly positive maps), CC against numpy's corrcoef, SIM against its definition written out; on the
    same random maps."""
    from scipy.stats import entropy
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    pred = rng.random((4, 12, 16)) + 1e-3
    gt = rng.random((4, 12, 16)) + 1e-3
    fix = rng.random((4, 12, 16)) > 0.9
    other = np.stack([fix[[j for j in range(4) if j != i]].any(axis=0) for i in range(4)])
    out = map_metrics(pred, gt, fix, other)
    expected_sauc = []
    for p, f, o in zip(pred, fix, other):
        labels = np.r_[np.ones(f.sum()), np.zeros(o.sum())]
        expected_sauc.append(roc_auc_score(labels, np.r_[p[f], p[o]]))
    assert out["sauc"] == pytest.approx(np.mean(expected_sauc), abs=1e-12)
    assert out["kld"] == pytest.approx(np.mean([entropy(g.ravel(), p.ravel()) for p, g in zip(pred, gt)]), rel=1e-9)
    assert out["cc"] == pytest.approx(np.mean([np.corrcoef(p.ravel(), g.ravel())[0, 1] for p, g in zip(pred, gt)]))
    mm = [(m - m.min()) / (m.max() - m.min()) for m in (*pred, *gt)]
    expected_sim = [np.minimum(a / a.sum(), b / b.sum()).sum() for a, b in zip(mm[:4], mm[4:])]
    assert out["sim"] == pytest.approx(np.mean(expected_sim))
    assert "sauc" not in map_metrics(pred, gt, fix)
