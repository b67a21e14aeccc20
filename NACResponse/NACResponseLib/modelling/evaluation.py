"""Discrimination and classification metrics with stratified bootstrap CIs, operating points,
Harrell's optimism correction, events per variable and the label-permutation test.

Positive class (1) is the response (e.g. pCR); higher scores mean more likely responder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

METRICS = ("auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1")


def roc_auc(y, p) -> float:
    """Mann-Whitney AUC (ties count one half)."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, dtype=float).ravel()
    m = int(y.sum())
    n = len(y) - m
    if m == 0 or n == 0:
        return float("nan")
    r = rankdata(p)
    return float((r[y == 1].sum() - m * (m + 1) / 2) / (m * n))


def roc_points(y, p) -> tuple[np.ndarray, np.ndarray]:
    """The empirical ROC curve (false-positive rate, true-positive rate), as the report plots it."""
    from sklearn.metrics import roc_curve

    y = np.asarray(y).astype(int).ravel()
    if len(np.unique(y)) != 2:
        raise ValueError("an ROC curve needs both outcomes")
    fpr, tpr, _ = roc_curve(y, np.asarray(p, dtype=float).ravel())
    return fpr, tpr


def confusion_metrics(y, p, threshold: float) -> dict[str, float]:
    """Metrics for the rule "positive when p >= threshold"."""
    y = np.asarray(y).astype(int).ravel()
    called = np.asarray(p, dtype=float).ravel() >= threshold
    tp = np.sum(called & (y == 1))
    tn = np.sum(~called & (y == 0))
    fp = np.sum(called & (y == 0))
    fn = np.sum(~called & (y == 1))
    return _from_counts(tp, tn, fp, fn)


def _from_counts(tp, tn, fp, fn) -> dict[str, Any]:
    with np.errstate(divide="ignore", invalid="ignore"):
        tp, tn, fp, fn = (np.asarray(v, dtype=float) for v in (tp, tn, fp, fn))
        out = {"accuracy": (tp + tn) / (tp + tn + fp + fn), "sensitivity": tp / (tp + fn),
               "specificity": tn / (tn + fp), "ppv": tp / (tp + fp), "npv": tn / (tn + fn),
               "f1": 2 * tp / (2 * tp + fp + fn)}
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


def weighted_youden(y, p, w: float = 0.5) -> dict[str, float]:
    """Threshold maximising J_w = w*Se + (1-w)*Sp - 1 (w = 0.5 gives Youden's J up to a factor 2).

    A large w protects responders (few false negatives); a small w favours specificity.
    Candidate thresholds are the observed scores (rule: positive when p >= t).
    """
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"Youden weight must lie in [0, 1], got {w}")
    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, dtype=float).ravel()
    cands = np.unique(p)
    called = p[None, :] >= cands[:, None]
    tp = (called & (y == 1)).sum(axis=1)
    tn = (~called & (y == 0)).sum(axis=1)
    se = tp / max(1, (y == 1).sum())
    sp = tn / max(1, (y == 0).sum())
    j = w * se + (1 - w) * sp - 1
    best = int(np.argmax(j))  # first maximum = lowest threshold among ties
    return {"threshold": float(cands[best]), "weight": float(w), "sensitivity": float(se[best]),
            "specificity": float(sp[best]), "j": float(j[best])}


def stratified_bootstrap_indices(y, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) resample indices drawn within each class (class sizes fixed), positives first."""
    y = np.asarray(y).astype(int).ravel()
    pos = np.flatnonzero(y == 1)
    neg = np.flatnonzero(y == 0)
    return np.concatenate([rng.choice(pos, size=(n_boot, len(pos))),
                           rng.choice(neg, size=(n_boot, len(neg)))], axis=1)


def bootstrap_metrics(y, p, threshold: float | None = None, *, n_boot: int = 2000, seed: int = 0,
                      alpha: float = 0.05) -> dict[str, Any]:
    """Point estimates and stratified-bootstrap percentile CIs of the AUC (and, with a threshold,
    accuracy, sensitivity, specificity, PPV, NPV and F1).  The seed is returned with the result."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, dtype=float).ravel()
    rng = np.random.default_rng(seed)
    idx = stratified_bootstrap_indices(y, n_boot, rng)
    m = int(y.sum())
    n = len(y) - m
    pb = p[idx]
    ranks = rankdata(pb, axis=1)
    auc_b = (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    est: dict[str, Any] = {"auc": roc_auc(y, p)}
    boots: dict[str, np.ndarray] = {"auc": auc_b}
    if threshold is not None:
        est.update(confusion_metrics(y, p, threshold))
        called = pb >= threshold
        yb = y[idx] == 1
        counts = [np.sum(called & yb, axis=1), np.sum(~called & ~yb, axis=1),
                  np.sum(called & ~yb, axis=1), np.sum(~called & yb, axis=1)]
        boots.update(_from_counts(*counts))
    out: dict[str, Any] = {"n": len(y), "events": m, "n_boot": n_boot, "seed": seed, "alpha": alpha,
                           "threshold": threshold}
    for k, v in est.items():
        b = boots[k]
        b = b[np.isfinite(b)]
        lo, hi = (np.quantile(b, [alpha / 2, 1 - alpha / 2]) if len(b) else (np.nan, np.nan))
        out[k] = {"estimate": float(v), "ci_low": float(lo), "ci_high": float(hi)}
    return out


def events_per_variable(y, n_variables: int) -> float:
    """EPV: events of the smaller outcome class per candidate variable (Peduzzi 1996)."""
    y = np.asarray(y).astype(int).ravel()
    return float(min(y.sum(), len(y) - y.sum()) / max(1, n_variables))


def harrell_optimism(make_estimator: Callable[[], Any], X, y, *, n_boot: int = 200, seed: int = 0,
                     predict: Callable[[Any, Any], np.ndarray] | None = None) -> dict[str, Any]:
    """Optimism-corrected AUC by Harrell's bootstrap (Harrell, Lee & Mark, Stat Med 1996).

    For each bootstrap sample: refit the whole modelling procedure (selection included), take
    AUC(bootstrap sample) - AUC(original data); the mean is the optimism subtracted from the
    apparent AUC.  Resamples with a single class are redrawn.
    """
    y = np.asarray(y).astype(int).ravel()
    predict = predict or (lambda est, data: est.predict_proba(data)[:, 1])
    take = (lambda data, i: data.iloc[i]) if hasattr(X, "iloc") else (lambda data, i: data[i])
    model = make_estimator().fit(X, y)
    apparent = roc_auc(y, predict(model, X))
    rng = np.random.default_rng(seed)
    optimism = []
    failures = 0
    while len(optimism) < n_boot:
        i = rng.integers(0, len(y), len(y))
        if y[i].min() == y[i].max():
            continue
        try:
            est = make_estimator().fit(take(X, i), y[i])
            optimism.append(roc_auc(y[i], predict(est, take(X, i))) - roc_auc(y, predict(est, X)))
        except (ValueError, np.linalg.LinAlgError):
            failures += 1
            if failures > n_boot:
                raise
    opt = float(np.mean(optimism))
    return {"apparent_auc": apparent, "optimism": opt, "corrected_auc": apparent - opt,
            "n_boot": n_boot, "seed": seed, "failed_refits": failures}


def permutation_test(oof_auc: Callable[[np.ndarray], float], y, *, n_permutations: int = 20,
                     seed: int = 0) -> dict[str, Any]:
    """Leakage guard: the whole cross-validated pipeline on shuffled labels.

    ``oof_auc(labels)`` must run selection + fitting inside cross-validation and return the
    out-of-fold AUC.  With no leakage the shuffled AUCs centre on 0.5.
    """
    y = np.asarray(y).astype(int).ravel()
    rng = np.random.default_rng(seed)
    observed = float(oof_auc(y))
    perm = np.array([oof_auc(rng.permutation(y)) for _ in range(n_permutations)])
    return {"observed_auc": observed, "permuted_auc_mean": float(np.mean(perm)),
            "permuted_auc_sd": float(np.std(perm, ddof=1)) if len(perm) > 1 else 0.0,
            "permuted_aucs": perm.tolist(),
            "p": float((1 + np.sum(perm >= observed)) / (1 + len(perm))),
            "n_permutations": n_permutations, "seed": seed}
