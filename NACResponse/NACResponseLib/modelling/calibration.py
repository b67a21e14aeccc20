"""Calibration of predicted probabilities.

* slope: logistic regression of y on logit(p) (ideal 1; < 1 means predictions too extreme);
* intercept ("calibration-in-the-large"): logistic regression of y on an intercept with logit(p)
  as offset, i.e. the slope fixed at 1 (ideal 0);
* a decile table (observed vs mean predicted per risk group).
Steyerberg EW, Clinical Prediction Models (2nd ed.), ch. 15; Van Calster B et al., J Clin Epidemiol 2016.
"""

from __future__ import annotations

import numpy as np

from .logit import fit_logit, logit


def calibration_slope_intercept(y, p, alpha: float = 0.05) -> dict[str, float]:
    y = np.asarray(y, dtype=float).ravel()
    lp = logit(p)
    slope_fit = fit_logit(lp, y)
    int_fit = fit_logit(np.empty((len(y), 0)), y, offset=lp)
    s_ci = slope_fit.conf_int(alpha)[1]
    i_ci = int_fit.conf_int(alpha)[0]
    return {"slope": float(slope_fit.params[1]), "slope_ci_low": float(s_ci[0]), "slope_ci_high": float(s_ci[1]),
            "intercept": float(int_fit.params[0]), "intercept_ci_low": float(i_ci[0]),
            "intercept_ci_high": float(i_ci[1]),
            "brier": float(np.mean((np.asarray(p, float) - y) ** 2))}


def decile_table(y, p, n_bins: int = 10):
    """Observed event rate and mean predicted probability per quantile group of p."""
    import pandas as pd

    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    n_bins = max(1, min(n_bins, len(np.unique(p))))
    order = np.argsort(p, kind="mergesort")
    groups = np.empty(len(p), dtype=int)
    groups[order] = np.arange(len(p)) * n_bins // len(p)
    rows = []
    for g in range(n_bins):
        sel = groups == g
        if not sel.any():
            continue
        rows.append({"bin": g + 1, "n": int(sel.sum()), "mean_predicted": float(p[sel].mean()),
                     "observed": float(y[sel].mean()), "events": int(y[sel].sum()),
                     "p_min": float(p[sel].min()), "p_max": float(p[sel].max())})
    return pd.DataFrame(rows)
