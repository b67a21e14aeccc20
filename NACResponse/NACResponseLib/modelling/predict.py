"""Per-case prediction from a saved model: probability, class at each operating point and the
features that moved the prediction most.

Contributions: for logistic models coefficient x (value - training mean) on the scale the model
sees (z-scores after the selection chain, so coefficient x standardised value); for other models
the change in probability when that feature is replaced by its training mean (a permutation-style,
SHAP-free contribution)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .artefact import SavedModel, load_model


def _as_frame(case_features):
    import pandas as pd

    if isinstance(case_features, pd.DataFrame):
        if len(case_features) != 1:
            raise InputError(f"predict_case needs one case; got {len(case_features)} rows")
        return case_features
    if isinstance(case_features, pd.Series):
        return case_features.to_frame().T
    if isinstance(case_features, dict):
        return pd.DataFrame([case_features])
    raise InputError(f"case features must be a dict, Series or one-row DataFrame, not {type(case_features).__name__}")


def predict_case(model: SavedModel | str | Path, case_features, top_n: int = 5) -> dict[str, Any]:
    if not isinstance(model, SavedModel):
        model = load_model(model)
    frame = _as_frame(case_features)
    inner = model.transform(frame)
    a = inner.to_numpy(dtype=float)
    prob = float(model.predict_from_matrix(a)[0])
    classes = {}
    for name, op in model.operating_points.items():
        thr = float(op["threshold"])
        cls = int(prob >= thr)
        classes[name] = {"threshold": thr, "class": cls,
                         "label": "likely responder" if cls else "likely non-responder"}
    names = list(inner.columns)
    mean = model.arrays.get("input_mean", np.zeros(a.shape[1]))
    last = model.meta["steps"][-1]
    if last["type"] == "logistic":
        key = f"s{len(model.meta['steps']) - 1}"
        contrib = model.arrays[f"{key}_coef"] * (a[0] - mean)
        kind = "log-odds (coefficient x standardised value)"
    else:
        contrib = np.zeros(a.shape[1])
        for j in range(a.shape[1]):
            b = a.copy()
            b[0, j] = mean[j]
            contrib[j] = prob - float(model.predict_from_matrix(b)[0])
        kind = "probability change vs training mean"
    order = np.argsort(-np.abs(contrib), kind="stable")[:top_n]
    top = [{"feature": names[j], "value": float(a[0, j]), "contribution": float(contrib[j])} for j in order]
    return {"probability": prob, "classes": classes, "top_features": top, "contribution_kind": kind,
            "target": model.meta.get("target"), "kind": model.meta.get("kind")}
