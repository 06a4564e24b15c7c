"""Score and saliency-map metrics (numpy only).

Scores: Spearman ρ and Pearson r (:mod:`memgaze.correlation`), MSE, pairwise ranking accuracy. Maps, as in the MIT saliency benchmark code (MIT300,
github.com/cvzoya/saliency, which the Tübingen benchmark reproduces):

- NSS: mean of the z-scored predicted map (std with N−1, as MATLAB ``std``) at fixated pixels.
- CC: Pearson correlation of the predicted and ground-truth maps (:func:`memgaze.correlation.pearson_rows`).
- KLD: ``sum(g * log(eps + g / (p + eps)))`` with both maps normalised to sum 1, eps = 2.2204e-16.
- SIM: ``sum(min(p, g))`` after each map is scaled to [0, 1] (min–max) and then to sum 1.
- AUC-Judd: thresholds at the predicted values at fixations; true-positive rate = fixations
  at or above, false-positive rate = other pixels at or above; trapezoidal area. Without ties
  this is exactly AUC_Judd.m; the MIT code adds 1e-7 random jitter to break ties, here each
  distinct value is one threshold (deterministic; a constant map scores 0.5).
- sAUC (shuffled AUC): the area under the ROC curve separating the predicted values at this image's
  fixations (positives) from those at the locations fixated on *other* images (negatives), so a centre
  bias alone scores about 0.5. Computed exactly (every negative location, ties counting one half), as the
  Tübingen benchmark does; the MIT code samples as many negatives as fixations 100 times and thresholds
  in steps of 0.1, which approximates the same number.

A correlation of a constant input is undefined; it is 0.0 here (no correlation; 1.0 for two equal
constants), so that early stopping on Spearman compares numbers: see :mod:`memgaze.correlation`.
"""

from __future__ import annotations

import numpy as np

from memgaze.correlation import pearson, pearson_rows, spearman

EPS = 2.2204e-16


def pairwise_accuracy(pred: np.ndarray, reference: np.ndarray) -> float:
    """Share of the pairs the reference orders (unequal scores) that ``pred`` orders the same way;
    a tie in ``pred`` counts one half. 0.5 is chance."""
    p = np.asarray(pred, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    upper = np.triu_indices(len(r), k=1)
    ref_sign = np.sign(r[:, None] - r[None, :])[upper]
    pred_sign = np.sign(p[:, None] - p[None, :])[upper]
    ordered = ref_sign != 0
    if not ordered.any():
        return float("nan")
    agree = np.where(pred_sign[ordered] == 0, 0.5, (pred_sign[ordered] == ref_sign[ordered]).astype(np.float64))
    return float(agree.mean())


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(np.mean(diff * diff))


def score_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """``{"spearman", "pearson", "mse"}`` of predicted vs ground-truth scores."""
    return {"spearman": spearman(pred, target), "pearson": pearson(pred, target), "mse": mse(pred, target)}


def nss(pred: np.ndarray, fixations: np.ndarray) -> float:
    """Normalized scanpath saliency of map ``pred`` at the True pixels of ``fixations``."""
    p = np.asarray(pred, dtype=np.float64)
    fix = np.asarray(fixations, dtype=bool)
    if not fix.any():
        raise ValueError("nss: the fixation map has no fixations")
    std = p.std(ddof=1)
    z = (p - p.mean()) / std if std > 0 else np.zeros_like(p)
    return float(z[fix].mean())


def _unit_sum(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return m / m.sum()


def kld(pred: np.ndarray, gt: np.ndarray) -> float:
    """KL divergence of ``gt`` from ``pred`` (lower is better), both normalised to sum 1."""
    p, g = _unit_sum(pred), _unit_sum(gt)
    return float(np.sum(g * np.log(EPS + g / (p + EPS))))


def sim(pred: np.ndarray, gt: np.ndarray) -> float:
    """Histogram intersection of the min–max then sum normalised maps (1 = identical)."""

    def norm(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        span = m.max() - m.min()
        return _unit_sum((m - m.min()) / span if span > 0 else np.ones_like(m))

    return float(np.minimum(norm(pred), norm(gt)).sum())


def auc_judd(pred: np.ndarray, fixations: np.ndarray) -> float:
    """AUC-Judd of map ``pred`` for the True pixels of ``fixations``."""
    s = np.asarray(pred, dtype=np.float64).ravel()
    fix = np.asarray(fixations, dtype=bool).ravel()
    n_fix, n_pix = int(fix.sum()), s.size
    if n_fix == 0:
        raise ValueError("auc_judd: the fixation map has no fixations")
    if n_fix == n_pix:
        return 0.5
    thresholds = np.unique(s[fix])[::-1]  # distinct values at fixations, high to low
    fix_above = n_fix - np.searchsorted(np.sort(s[fix]), thresholds, side="left")
    all_above = n_pix - np.searchsorted(np.sort(s), thresholds, side="left")
    tp = np.r_[0.0, fix_above / n_fix, 1.0]
    fp = np.r_[0.0, (all_above - fix_above) / (n_pix - n_fix), 1.0]
    return float(np.sum((fp[1:] - fp[:-1]) * (tp[1:] + tp[:-1]) / 2))


def sauc(pred: np.ndarray, fixations: np.ndarray, other_fixations: np.ndarray) -> float:
    """Shuffled AUC of map ``pred``: its values at the True pixels of ``fixations`` against its values at
    the True pixels of ``other_fixations`` (the locations fixated on other images)."""
    s = np.asarray(pred, dtype=np.float64).ravel()
    positives = s[np.asarray(fixations, dtype=bool).ravel()]
    negatives = np.sort(s[np.asarray(other_fixations, dtype=bool).ravel()])
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("sauc: needs fixations on this image and on other images")
    below = np.searchsorted(negatives, positives, side="left")
    ties = np.searchsorted(negatives, positives, side="right") - below
    return float(np.sum(below + 0.5 * ties) / (len(positives) * len(negatives)))


def map_metrics(
    pred: np.ndarray, gt: np.ndarray, fixations: np.ndarray | None = None, other_fixations: np.ndarray | None = None
) -> dict[str, float]:
    """Mean CC, KLD, SIM over ``[N, h, w]`` maps, plus NSS and AUC-Judd where ``fixations``
    (bool ``[N, h, w]``) are given, and sAUC where ``other_fixations`` (bool ``[N, h, w]``: the locations
    fixated on images other than map i's) are too; maps without fixations are left out of those."""
    pred = np.asarray(pred).reshape(-1, *np.shape(pred)[-2:])
    gt = np.asarray(gt).reshape(pred.shape)
    out = {
        "cc": float(np.mean(pearson_rows(pred, gt))),
        "kld": float(np.mean([kld(p, g) for p, g in zip(pred, gt)])),
        "sim": float(np.mean([sim(p, g) for p, g in zip(pred, gt)])),
    }
    if fixations is not None:
        fix = np.asarray(fixations, dtype=bool).reshape(pred.shape)
        used = [i for i in range(len(pred)) if fix[i].any()]
        if used:
            out["nss"] = float(np.mean([nss(pred[i], fix[i]) for i in used]))
            out["auc_judd"] = float(np.mean([auc_judd(pred[i], fix[i]) for i in used]))
        if other_fixations is not None:
            other = np.asarray(other_fixations, dtype=bool).reshape(pred.shape)
            shuffled = [i for i in used if other[i].any()]
            if shuffled:
                out["sauc"] = float(np.mean([sauc(pred[i], fix[i], other[i]) for i in shuffled]))
    return out
