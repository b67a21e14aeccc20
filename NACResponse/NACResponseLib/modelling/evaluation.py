"""Discrimination and classification metrics with stratified bootstrap CIs, operating points,
bootstrap validation of the AUC (Harrell's optimism correction and Efron & Tibshirani's .632+),
events per variable and the label-permutation test.

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
    """Threshold maximising the weighted Youden index J_w = 2 (w Se + (1-w) Sp) - 1, which is
    Youden's J = Se + Sp - 1 at w = 0.5 (range -1..1, 0 = no better than chance).

    A large w protects responders (few false negatives); a small w favours specificity.
    Candidate thresholds are the observed scores and +inf, "call nobody positive" (rule: positive
    when p >= t; sklearn's ``roc_curve`` has the same first threshold).
    """
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"Youden weight must lie in [0, 1], got {w}")
    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, dtype=float).ravel()
    cands = np.append(np.unique(p), np.inf)
    called = p[None, :] >= cands[:, None]
    tp = (called & (y == 1)).sum(axis=1)
    tn = (~called & (y == 0)).sum(axis=1)
    se = tp / max(1, (y == 1).sum())
    sp = tn / max(1, (y == 0).sum())
    j = 2 * (w * se + (1 - w) * sp) - 1
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


def bootstrap_metrics(y, p, threshold: float | None = None, *, called=None, n_boot: int = 2000, seed: int = 0,
                      alpha: float = 0.05) -> dict[str, Any]:
    """Point estimates and stratified-bootstrap percentile CIs of the AUC and, with a threshold
    or per-case calls, accuracy, sensitivity, specificity, PPV, NPV and F1.

    ``called``: each case's call made elsewhere (e.g. with the threshold its training fold chose),
    1/0 or the fraction of CV repeats that called it positive.  The seed is returned."""
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
    if threshold is not None and called is not None:
        raise ValueError("give a threshold or per-case calls, not both")
    if threshold is not None:
        called = p >= threshold
    if called is not None:
        c = np.asarray(called, dtype=float).ravel()
        if c.shape != y.shape or np.any((c < 0) | (c > 1)):
            raise ValueError("calls must be one value in [0, 1] per case")
        est.update(_from_counts(*_call_counts(c, y == 1)))
        boots.update(_from_counts(*_call_counts(c[idx], y[idx] == 1, axis=1)))
    out: dict[str, Any] = {"n": len(y), "events": m, "n_boot": n_boot, "seed": seed, "alpha": alpha,
                           "threshold": threshold if threshold is None else float(threshold)}
    for k, v in est.items():
        b = boots[k]
        b = b[np.isfinite(b)]
        lo, hi = (np.quantile(b, [alpha / 2, 1 - alpha / 2]) if len(b) else (np.nan, np.nan))
        out[k] = {"estimate": float(v), "ci_low": float(lo), "ci_high": float(hi)}
    return out


def _call_counts(c, pos, axis=None):
    """(tp, tn, fp, fn) of calls ``c`` (fractions allowed) against the truth ``pos``."""
    return (np.sum(c * pos, axis=axis), np.sum((1 - c) * ~pos, axis=axis),
            np.sum(c * ~pos, axis=axis), np.sum((1 - c) * pos, axis=axis))


def events_per_variable(y, n_variables: int) -> float:
    """EPV: events of the smaller outcome class per candidate variable (Peduzzi 1996)."""
    y = np.asarray(y).astype(int).ravel()
    return float(min(y.sum(), len(y) - y.sum()) / max(1, n_variables))


#: Harrell's bootstrap is reported as valid only from this many events per candidate variable:
#: below it (and whenever features outnumber patients) the bootstrap models fit their resamples
#: almost perfectly and the optimism is underestimated (0.93 on pure noise whose CV AUC is 0.49);
#: the .632+ estimate replaces it there (Iba et al., BMC Med Res Methodol 2021; Steyerberg ch. 17).
HARRELL_MIN_EPV = 10.0


def auc_632_plus(apparent_auc: float, oob_auc: float, no_information: float = 0.5) -> dict[str, float]:
    """The .632+ bootstrap AUC (Efron & Tibshirani, JASA 1997, eq. 32) from the apparent AUC and
    the mean out-of-bag AUC, on the error scale err = 1 - AUC with no-information error 1 - 0.5.

    Err1' = min(Err1, gamma); R = (Err1' - err) / (gamma - err) in [0, 1] (0 if Err1' <= err or
    gamma <= err); w = 0.632 / (1 - 0.368 R); Err.632+ = (1 - w) err + w Err1'."""
    err, err1, gamma = 1 - apparent_auc, 1 - oob_auc, 1 - no_information
    err1p = min(err1, gamma)
    r = (err1p - err) / (gamma - err) if err1p > err and gamma > err else 0.0
    r = float(min(max(r, 0.0), 1.0))
    w = 0.632 / (1 - 0.368 * r)
    return {"auc": float(1 - ((1 - w) * err + w * err1p)), "relative_overfitting": r, "weight": float(w),
            "apparent_auc": float(apparent_auc), "oob_auc": float(oob_auc),
            "auc_632": float(1 - (0.368 * err + 0.632 * err1))}


def bootstrap_validation(make_estimator: Callable[[], Any], X, y, *, n_boot: int = 200, seed: int = 0,
                         predict: Callable[[Any, Any], np.ndarray] | None = None,
                         fit: Callable[[Any, np.ndarray], Any] | None = None) -> dict[str, Any]:
    """Harrell's optimism-corrected AUC and the .632+ AUC from one set of bootstrap refits.

    Each resample refits the whole modelling procedure (``fit(X, y)``, default
    ``make_estimator().fit``: selection and, when the caller passes it, tuning included).
    Harrell (Harrell, Lee & Mark, Stat Med 1996): optimism = mean of AUC(resample) - AUC(original
    data), subtracted from the apparent AUC.  .632+: the mean AUC on the cases each resample left
    out, combined with the apparent AUC by ``auc_632_plus``.  Resamples whose drawn or left-out
    cases hold a single class are redrawn.
    """
    y = np.asarray(y).astype(int).ravel()
    predict = predict or (lambda est, data: est.predict_proba(data)[:, 1])
    fit = fit or (lambda data, labels: make_estimator().fit(data, labels))
    take = (lambda data, i: data.iloc[i]) if hasattr(X, "iloc") else (lambda data, i: data[i])
    apparent = roc_auc(y, predict(fit(X, y), X))
    rng = np.random.default_rng(seed)
    optimism, oob = [], []
    failures = 0
    while len(optimism) < n_boot:
        i = rng.integers(0, len(y), len(y))
        out = np.setdiff1d(np.arange(len(y)), i)
        if y[i].min() == y[i].max() or len(out) == 0 or y[out].min() == y[out].max():
            continue
        try:
            est = fit(take(X, i), y[i])
            p_all = predict(est, X)
            optimism.append(roc_auc(y[i], predict(est, take(X, i))) - roc_auc(y, p_all))
            oob.append(roc_auc(y[out], p_all[out]))
        except (ValueError, np.linalg.LinAlgError):
            failures += 1
            if failures > n_boot:
                raise
    opt = float(np.mean(optimism))
    return {"apparent_auc": apparent, "n_boot": n_boot, "seed": seed, "failed_refits": failures,
            "harrell": {"optimism": opt, "corrected_auc": apparent - opt},
            "auc_632plus": auc_632_plus(apparent, float(np.mean(oob)))}


def harrell_optimism(make_estimator: Callable[[], Any], X, y, *, n_boot: int = 200, seed: int = 0,
                     predict: Callable[[Any, Any], np.ndarray] | None = None,
                     fit: Callable[[Any, np.ndarray], Any] | None = None) -> dict[str, Any]:
    """Optimism-corrected AUC by Harrell's bootstrap (``bootstrap_validation``); valid when the
    events per candidate variable reach ``HARRELL_MIN_EPV``, not when features outnumber patients."""
    res = bootstrap_validation(make_estimator, X, y, n_boot=n_boot, seed=seed, predict=predict, fit=fit)
    return {"apparent_auc": res["apparent_auc"], **res["harrell"], "n_boot": n_boot, "seed": seed,
            "failed_refits": res["failed_refits"]}


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
