"""RCB regression (the LIMA protocol): a random-forest regression of the RCB index, scored by the
Spearman correlation of out-of-fold predictions with the truth and by the AUCs of the predicted
score for RCB-0/I vs II/III and for pCR vs non-pCR (a lower predicted RCB = a better response)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .evaluation import bootstrap_metrics
from .pipeline import ModelSpec, cross_validated_predictions, fit_model, selection_report
from .selection import SelectionConfig
from .targets import RCB_I_UPPER


def rcb_regression(X, rcb_index, pcr=None, *, selection: SelectionConfig | None = None, n_splits: int = 5,
                   seed: int = 0, n_boot: int = 2000, whitelist=None) -> dict[str, Any]:
    from scipy import stats

    y = np.asarray(rcb_index, dtype=float)
    ok = np.isfinite(y)
    X, y = X.loc[ok], y[ok]
    spec = ModelSpec("rcb", "random_forest", selection or SelectionConfig(), whitelist, task="regression",
                     random_state=seed)
    cv = cross_validated_predictions(spec, X, y, n_splits=n_splits, seed=seed)
    pred = cv["oof"]
    rho = stats.spearmanr(pred, y)
    out: dict[str, Any] = {"n": int(len(y)), "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue),
                           "predictions": pred.tolist(), "patient_ids": [str(i) for i in X.index]}
    good = (y <= RCB_I_UPPER).astype(int)  # RCB-0/I
    if 0 < good.sum() < len(good):
        out["auc_rcb01_vs_23"] = bootstrap_metrics(good, -pred, n_boot=n_boot, seed=seed)["auc"]
    if pcr is not None:
        pc = np.asarray(pcr, dtype=float)[ok]
        fin = np.isfinite(pc)
        if 0 < pc[fin].sum() < fin.sum():
            out["auc_pcr"] = bootstrap_metrics(pc[fin].astype(int), -pred[fin], n_boot=n_boot, seed=seed)["auc"]
    out["selection"] = selection_report(fit_model(spec, X, y))
    return out
