"""Response targets derived from the clinical table's outcome columns.

Binary (1 = response): ``pcr`` (breast pCR), ``axillary_pcr``, ``miller_payne`` (grade 4-5 vs
1-3), ``rcb_class`` (RCB-0/I vs II/III, from ``rcb_class`` or, when absent, from ``rcb_index``
with the MD Anderson cut-off 1.36).  Continuous: ``rcb_index`` (for the RCB regression).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

BINARY_TARGETS = ("pcr", "axillary_pcr", "miller_payne", "rcb_class")
CONTINUOUS_TARGETS = ("rcb_index",)
RCB_I_UPPER = 1.36  # Symmans et al., J Clin Oncol 2007: RCB-I is 0 < index <= 1.36


def target_task(name: str) -> str:
    if name in BINARY_TARGETS:
        return "classification"
    if name in CONTINUOUS_TARGETS:
        return "regression"
    raise InputError(f"unknown target {name!r}; choose one of {', '.join(BINARY_TARGETS + CONTINUOUS_TARGETS)}")


def make_target(frame, name: str):
    """The target as a float Series indexed like ``frame`` (NaN where the outcome is unknown)."""
    import pandas as pd

    target_task(name)

    def col(c):
        if c not in frame.columns:
            raise InputError(f"clinical table has no {c!r} column (needed for target {name!r})")
        return pd.to_numeric(frame[c], errors="coerce")

    if name in ("pcr", "axillary_pcr"):
        y = col(name)
        bad = y.dropna()[~y.dropna().isin([0, 1])]
        if len(bad):
            raise InputError(f"clinical column {name!r} must be 0/1; found {sorted(set(bad))[:5]}")
    elif name == "miller_payne":
        g = col("miller_payne")
        bad = g.dropna()[~g.dropna().isin([1, 2, 3, 4, 5])]
        if len(bad):
            raise InputError(f"clinical column 'miller_payne' must be a grade 1..5; found {sorted(set(bad))[:5]}")
        y = (g >= 4).astype(float).where(g.notna())
    elif name == "rcb_class":
        if "rcb_class" in frame.columns and frame["rcb_class"].notna().any():
            s = frame["rcb_class"].astype(object).map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                                                      else str(v).upper().replace("RCB-", "").strip())
            unknown = set(s.dropna()) - {"0", "I", "II", "III"}
            if unknown:
                raise InputError(f"clinical column 'rcb_class' has unknown classes {sorted(unknown)} (use 0, I, II, III)")
            y = s.map({"0": 1.0, "I": 1.0, "II": 0.0, "III": 0.0}).astype(float)
        else:
            idx = col("rcb_index")
            y = (idx <= RCB_I_UPPER).astype(float).where(idx.notna())
    else:
        y = col("rcb_index")
    return y.astype(float).rename(name)


def class_balance(y) -> dict[str, Any]:
    y = np.asarray(y, dtype=float)
    y = y[np.isfinite(y)]
    pos = int(np.sum(y == 1))
    return {"n": int(len(y)), "positive": pos, "negative": int(len(y) - pos),
            "prevalence": float(pos / len(y)) if len(y) else float("nan")}
