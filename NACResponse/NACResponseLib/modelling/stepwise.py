"""Stepwise prediction across NAC courses.

One model per timepoint (e.g. after cycle 2, after cycle 4), each with its own operating point from
a weighted Youden index J_w = 2 (w Se + (1-w) Sp) - 1 (positive = responder).  Early, a large w
(default 0.8) keeps sensitivity for responders high so few responders are wrongly flagged; later a
small w (default 0.2) favours specificity.  Patients predicted non-responders at a step are flagged
(candidates for a change of treatment) and leave the pathway; the rest are re-evaluated at the
next step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .evaluation import weighted_youden

DEFAULT_WEIGHTS = (0.8, 0.2)
NOT_FLAGGED = "not flagged"


def step_thresholds(y, probs: dict[str, np.ndarray], weights: dict[str, float]) -> dict[str, dict[str, float]]:
    """Operating point of each step, chosen on (out-of-fold) training predictions."""
    return {step: weighted_youden(y, p, weights[step]) for step, p in probs.items()}


def stepwise_flags(probs: dict[str, np.ndarray], thresholds: dict[str, Any], ids=None):
    """Per-patient flag step: the first step whose probability falls below its threshold
    (``NOT_FLAGGED`` = predicted responder at every step).  ``probs`` is ordered; a step's
    threshold is one number or one per patient (the one its training fold chose)."""
    import pandas as pd

    steps = list(probs)
    n = len(next(iter(probs.values())))
    flagged_at: list[str] = [NOT_FLAGGED] * n
    for step in steps:
        p = np.asarray(probs[step], dtype=float)
        thr = np.broadcast_to(np.asarray(thresholds[step], dtype=float), (n,))
        for i in range(n):
            if flagged_at[i] == NOT_FLAGGED and np.isfinite(p[i]) and p[i] < thr[i]:
                flagged_at[i] = step
    out = pd.DataFrame({f"p_{s}": np.asarray(probs[s], float) for s in steps})
    out["flagged_at"] = flagged_at
    if ids is not None:
        out.insert(0, "patient_id", list(ids))
    return out


def flag_table(y, flags) -> Any:
    """How many responders and non-responders are flagged at each step (and never flagged)."""
    import pandas as pd

    y = np.asarray(y).astype(int)
    steps = [c[2:] for c in flags.columns if c.startswith("p_")]
    rows = []
    remaining = len(y)
    for step in [*steps, None]:
        sel = np.array([f == (step if step is not None else NOT_FLAGGED) for f in flags["flagged_at"]])
        rows.append({"step": step if step is not None else NOT_FLAGGED,
                     "evaluated": int(remaining) if step is not None else int(sel.sum()),
                     "flagged": int(sel.sum()) if step is not None else 0,
                     "flagged_non_responders": int(np.sum(sel & (y == 0))) if step is not None else 0,
                     "flagged_responders": int(np.sum(sel & (y == 1))) if step is not None else 0,
                     "responders": int(np.sum(sel & (y == 1))) if step is None else None,
                     "non_responders": int(np.sum(sel & (y == 0))) if step is None else None})
        remaining -= int(sel.sum())
    return pd.DataFrame(rows)


def run_stepwise(y, probs: dict[str, np.ndarray], weights: dict[str, float] | None = None, ids=None,
                 case_thresholds: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Thresholds, per-patient flags and the flag table in one go.

    The operating points are chosen on all of ``probs`` (for a model trained on everyone); the
    flags use ``case_thresholds`` when given (each patient's threshold from the training fold it
    was not in: ``cross_validated_predictions(youden_weights=...)``), so the flag table is not
    scored on the predictions that chose its thresholds."""
    steps = list(probs)
    if weights is None:
        weights = {s: (DEFAULT_WEIGHTS[0] if i == 0 else DEFAULT_WEIGHTS[1]) for i, s in enumerate(steps)}
    ops = step_thresholds(y, probs, weights)
    flags = stepwise_flags(probs, case_thresholds or {s: ops[s]["threshold"] for s in steps}, ids)
    return {"operating_points": ops, "flags": flags, "table": flag_table(y, flags)}
