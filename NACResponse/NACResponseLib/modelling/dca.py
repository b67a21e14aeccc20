"""Decision curve analysis (Vickers AJ, Elkin EB. Med Decis Making 2006;26:565-74).

Net benefit at threshold probability pt: NB = TP/n - FP/n * pt / (1 - pt), where a patient is
"treated" (called positive) when p >= pt.  Treat-all: prevalence - (1 - prevalence) pt/(1 - pt);
treat-none: 0.
"""

from __future__ import annotations

import numpy as np


def net_benefit(y, p, thresholds=None):
    import pandas as pd

    y = np.asarray(y, dtype=int).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if thresholds is None:
        thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
    thresholds = np.asarray(thresholds, dtype=float)
    if np.any((thresholds <= 0) | (thresholds >= 1)):
        raise ValueError("decision-curve thresholds must lie strictly between 0 and 1")
    n = len(y)
    prevalence = y.mean()
    rows = []
    for pt in thresholds:
        called = p >= pt
        tp = int(np.sum(called & (y == 1)))
        fp = int(np.sum(called & (y == 0)))
        odds = pt / (1 - pt)
        rows.append({"threshold": float(pt), "tp": tp, "fp": fp,
                     "net_benefit": tp / n - fp / n * odds,
                     "treat_all": prevalence - (1 - prevalence) * odds,
                     "treat_none": 0.0})
    return pd.DataFrame(rows)
