"""Cohort ROC and calibration curves from ``reports/models/<target>/evaluation.json`` (written by
``nacresponse model evaluate``: per model the out-of-fold probabilities ``oof``, outcomes ``y`` and
the calibration ``deciles``), as data frames the Prediction panel plots (Slicer-free).  The ROC is
the core's (``modelling.evaluation.roc_points``), so the chart and the report draw the same curve."""

from __future__ import annotations

import json
from pathlib import Path


def find_evaluations(reports_dir) -> dict[str, Path]:
    """``{target: evaluation.json}`` under ``<study>/reports/models``."""
    root = Path(reports_dir) / "models"
    if not root.is_dir():
        return {}
    return {p.parent.name: p for p in sorted(root.glob("*/evaluation.json"))}


def load_evaluation(path) -> dict:
    """The evaluation with its non-finite floats restored (the file writes them as strings)."""
    from NACResponseLib.provenance import read_json

    path = Path(path)
    try:
        return read_json(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the evaluation ({exc})") from None


def roc_frames(evaluation: dict) -> dict:
    """``{model: DataFrame(fpr, tpr)}`` for every model of an evaluation."""
    import pandas as pd

    from NACResponseLib.modelling.evaluation import roc_points

    out = {}
    for name, model in evaluation.get("models", {}).items():
        fpr, tpr = roc_points(model["y"], model["oof"])
        out[name] = pd.DataFrame({"fpr": fpr, "tpr": tpr})
    return out


def calibration_frames(evaluation: dict) -> dict:
    """``{model: DataFrame(mean_predicted, observed, n)}`` (the evaluation's quantile groups)."""
    import pandas as pd

    out = {}
    for name, model in evaluation.get("models", {}).items():
        deciles = pd.DataFrame(model.get("deciles") or [])
        if {"mean_predicted", "observed"} <= set(deciles.columns):
            out[name] = deciles[["mean_predicted", "observed"] + (["n"] if "n" in deciles else [])]
    return out


def auc_text(evaluation: dict) -> str:
    parts = []
    for name, model in evaluation.get("models", {}).items():
        auc = (model.get("metrics") or {}).get("auc") or {}
        if isinstance(auc.get("estimate"), (int, float)):
            parts.append(f"{name} AUC {auc['estimate']:.3f} [{auc.get('ci_low', float('nan')):.3f}-"
                         f"{auc.get('ci_high', float('nan')):.3f}]")
    return "; ".join(parts)
