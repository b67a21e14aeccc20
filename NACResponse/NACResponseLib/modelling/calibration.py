"""Calibration of predicted probabilities.

* slope: logistic regression of y on logit(p) (ideal 1; < 1 means predictions too extreme);
* intercept ("calibration-in-the-large"): logistic regression of y on an intercept with logit(p)
  as offset, i.e. the slope fixed at 1 (ideal 0);
* a decile table (observed vs mean predicted per risk group);
* the Hosmer-Lemeshow goodness-of-fit test over deciles of risk, reported because users expect it
  (it has little power at tens of patients and depends on the grouping: the slope says more).
Steyerberg EW, Clinical Prediction Models (2nd ed.), ch. 15; Van Calster B et al., J Clin Epidemiol 2016;
Hosmer DW, Lemeshow S, Sturdivant RX, Applied Logistic Regression (3rd ed.), 2013, section 5.2.2.
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


def hosmer_lemeshow(y, p, n_groups: int = 10) -> dict[str, float]:
    """Hosmer-Lemeshow C-hat over "deciles of risk": groups cut at the quantiles of p (a tied
    probability stays in one group; duplicate cut points merge groups, as R's
    ``ResourceSelection::hoslem.test``), C = sum_g (O_g - E_g)^2 / (E_g (1 - E_g / n_g)) with O_g
    the events and E_g the summed probabilities of group g, p-value from chi-square with
    groups - 2 degrees of freedom."""
    from scipy.stats import chi2

    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    cuts = np.unique(np.quantile(p, np.linspace(0, 1, n_groups + 1)))
    group = np.clip(np.searchsorted(cuts, p, side="left") - 1, 0, len(cuts) - 2) if len(cuts) > 1 \
        else np.zeros(len(p), int)
    stat = 0.0
    used = 0
    for g in np.unique(group):
        sel = group == g
        n_g, o_g, e_g = sel.sum(), y[sel].sum(), p[sel].sum()
        used += 1
        if 0 < e_g < n_g:
            stat += (o_g - e_g) ** 2 / (e_g * (1 - e_g / n_g))
    df = used - 2
    return {"hl_statistic": float(stat), "hl_df": int(df), "hl_groups": int(used),
            "hl_p": float(chi2.sf(stat, df)) if df > 0 else float("nan")}
