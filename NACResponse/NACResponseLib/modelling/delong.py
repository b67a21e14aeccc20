"""DeLong's test for ROC AUCs with the fast mid-rank algorithm of Sun & Xu (2014).

Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under correlated
receiver operating characteristic curves. IEEE Signal Process Lett 2014;21:1389-93.
DeLong ER et al. Biometrics 1988;44:837-45.

The paired test compares two scores on the same patients; the unpaired version (independent
cohorts) follows pROC: D = (AUC1 - AUC2) / sqrt(var1 + var2) against Student's t with
Welch-Satterthwaite degrees of freedom.  Both return p-values (not log p).
"""

from __future__ import annotations

import numpy as np


def _check(y, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int).ravel()
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    if scores.shape[1] != len(y):
        raise ValueError(f"scores have {scores.shape[1]} values but y has {len(y)}")
    if set(np.unique(y)) - {0, 1}:
        raise ValueError("y must be binary 0/1")
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError("DeLong needs both classes in y")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    return y, scores


def delong_components(y, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs (k,), positive placements V10 (k, m) and negative placements V01 (k, n) for k scores.

    Higher scores mean class 1.  Ties count one half (the Mann-Whitney convention).
    """
    from scipy.stats import rankdata

    y, scores = _check(y, scores)
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    tx = rankdata(pos, axis=1)
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n  # for each positive: fraction of negatives scored lower
    v01 = 1.0 - (tz[:, m:] - ty) / m  # for each negative: fraction of positives scored higher
    return aucs, v10, v01


def delong_covariance(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix S = S10/m + S01/n."""
    aucs, v10, v01 = delong_components(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


def auc_ci(y, score, alpha: float = 0.05) -> dict[str, float]:
    """AUC with its DeLong variance and normal-approximation CI (clipped to [0, 1])."""
    from scipy import stats

    aucs, cov = delong_covariance(y, score)
    se = float(np.sqrt(cov[0, 0]))
    z = stats.norm.ppf(1 - alpha / 2)
    return {"auc": float(aucs[0]), "var": float(cov[0, 0]), "se": se,
            "ci_low": float(max(0.0, aucs[0] - z * se)), "ci_high": float(min(1.0, aucs[0] + z * se))}


def delong_paired(y, score1, score2, alpha: float = 0.05) -> dict[str, float]:
    """Two correlated AUCs (same patients): z statistic, two-sided p and CI of AUC1 - AUC2."""
    from scipy import stats

    aucs, cov = delong_covariance(y, np.vstack([np.asarray(score1, float), np.asarray(score2, float)]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 0:  # identical scores (or identical rankings)
        z, p = 0.0, 1.0
        se = 0.0
    else:
        se = float(np.sqrt(var))
        z = diff / se
        p = float(2 * stats.norm.sf(abs(z)))
    q = stats.norm.ppf(1 - alpha / 2)
    return {"auc1": float(aucs[0]), "auc2": float(aucs[1]), "diff": diff, "se": se, "z": float(z),
            "p": p, "ci_low": diff - q * se, "ci_high": diff + q * se,
            "correlation": float(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])) if cov[0, 0] * cov[1, 1] > 0 else 1.0}


def delong_unpaired(y1, score1, y2, score2) -> dict[str, float]:
    """Two AUCs from independent cohorts (pROC's unpaired DeLong: t with Welch df)."""
    from scipy import stats

    a1, c1 = delong_covariance(y1, score1)
    a2, c2 = delong_covariance(y2, score2)
    v1, v2 = float(c1[0, 0]), float(c2[0, 0])
    n1, n2 = len(np.ravel(y1)), len(np.ravel(y2))
    diff = float(a1[0] - a2[0])
    if v1 + v2 <= 0:
        return {"auc1": float(a1[0]), "auc2": float(a2[0]), "diff": diff, "d": 0.0, "df": float("nan"), "p": 1.0}
    d = diff / np.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
    return {"auc1": float(a1[0]), "auc2": float(a2[0]), "diff": diff, "d": float(d), "df": float(df),
            "p": float(2 * stats.t.sf(abs(d), df))}
