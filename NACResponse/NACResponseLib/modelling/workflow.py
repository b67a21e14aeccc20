"""Evaluate several models on one target: out-of-fold predictions, bootstrap metrics at operating
points chosen inside each training fold, calibration (slope, intercept, Hosmer-Lemeshow), decision
curves, bootstrap validation (.632+, and Harrell's optimism where it is valid), EPV, the paired
DeLong table and the label-permutation leakage guard.  The result is JSON-serialisable (the report
reads it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from .calibration import calibration_slope_intercept, decile_table, hosmer_lemeshow
from .dca import net_benefit
from .delong import auc_ci, delong_paired
from .evaluation import (
    HARRELL_MIN_EPV,
    bootstrap_metrics,
    bootstrap_validation,
    events_per_variable,
    permutation_test,
    roc_auc,
    weighted_youden,
)
from .pipeline import ModelSpec, build_pipeline, cross_validated_predictions, fit_model, selection_report
from .targets import class_balance

THRESHOLD_RULE = ("chosen inside each training fold (weighted Youden on its inner cross-validation "
                  "predictions) and applied to its validation fold")


@dataclass
class EvaluationSettings:
    n_splits: int = 5
    n_repeats: int = 1
    n_boot: int = 2000
    optimism_boot: int = 200
    n_permutations: int = 20
    permutation_model: str | None = None  # name of the model to permute; None = skip
    youden_weight: float = 0.5
    tune: bool = False
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def evaluate_model(spec: ModelSpec, X, y, settings: EvaluationSettings, cancel=None) -> dict[str, Any]:
    """One model: CV predictions, metrics, calibration, curves and bootstrap validation.

    ``operating_point`` is the threshold a model trained on all patients would use (chosen on
    all out-of-fold predictions); the sensitivity, specificity, PPV and NPV in ``metrics`` come
    from thresholds chosen inside each training fold (``threshold_rule``), never from the
    predictions they score."""
    y = np.asarray(y).astype(int)
    cv = cross_validated_predictions(spec, X, y, n_splits=settings.n_splits, n_repeats=settings.n_repeats,
                                     seed=settings.seed, tune=settings.tune,
                                     youden_weights={"youden": settings.youden_weight}, cancel=cancel)
    p = cv["oof"]
    op = weighted_youden(y, p, settings.youden_weight)
    final = fit_model(spec, X, y, tune=settings.tune, seed=settings.seed)
    sel = selection_report(final)
    freq = Counter(f for fold in cv["fold_features"] for f in fold)
    n_folds = len(cv["fold_features"])
    result: dict[str, Any] = {
        "spec": spec.to_dict(), "name": spec.name, "n": int(len(y)), "class_balance": class_balance(y),
        "patient_ids": [str(i) for i in X.index], "y": y.tolist(), "oof": p.tolist(),
        "auc_delong": auc_ci(y, p), "operating_point": op,
        "metrics": bootstrap_metrics(y, p, called=cv["called"]["youden"], n_boot=settings.n_boot,
                                     seed=settings.seed),
        "threshold_rule": _threshold_rule(cv["fold_thresholds"]),
        "fold_thresholds": [f["thresholds"]["youden"] for f in cv["fold_thresholds"]],
        "oof_called": cv["called"]["youden"].tolist(),
        "calibration": {**calibration_slope_intercept(y, p), **hosmer_lemeshow(y, p)},
        "deciles": decile_table(y, p).to_dict(orient="records"),
        "dca": net_benefit(y, p).to_dict(orient="records"),
        "selection": sel,
        "selection_frequency": {f: c / n_folds for f, c in freq.most_common()},
        "epv_candidates": events_per_variable(y, X.shape[1]),
        "epv_selected": events_per_variable(y, max(1, len(sel["features"]))),
    }
    if settings.optimism_boot:
        result["validation"] = validate_by_bootstrap(spec, X, y, settings)
    return result


def _threshold_rule(folds: list[dict[str, Any]]) -> str:
    small = sum(f["source"] != "inner CV" for f in folds)
    return THRESHOLD_RULE + (f"; {small} of {len(folds)} training folds were too small for an inner CV and "
                             "chose theirs on their in-sample predictions" if small else "")


def validate_by_bootstrap(spec: ModelSpec, X, y, settings: EvaluationSettings) -> dict[str, Any]:
    """.632+ AUC always; Harrell's optimism-corrected AUC only where it is valid (events per
    candidate variable >= ``HARRELL_MIN_EPV``), else withheld with a note.  Each refit repeats the
    whole procedure, tuning included when ``settings.tune``."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bootstrap_validation(
            lambda: build_pipeline(spec), X, y, n_boot=settings.optimism_boot, seed=settings.seed,
            fit=lambda data, labels: fit_model(spec, data, labels, tune=settings.tune, seed=settings.seed))
    epv = events_per_variable(y, X.shape[1])
    valid = epv >= HARRELL_MIN_EPV
    out = {"auc_632plus": res["auc_632plus"]["auc"], "details_632plus": res["auc_632plus"],
           "apparent_auc": res["apparent_auc"], "n_boot": res["n_boot"], "seed": res["seed"],
           "failed_refits": res["failed_refits"], "tuned_in_refits": bool(settings.tune),
           "harrell_valid": bool(valid), "harrell_auc": res["harrell"]["corrected_auc"] if valid else None,
           "harrell_optimism": res["harrell"]["optimism"] if valid else None,
           "details_harrell": res["harrell"], "epv_candidates": epv}
    out["note"] = (f"Harrell's optimism-corrected AUC shown: {epv:.3g} events per candidate variable "
                   f"(>= {HARRELL_MIN_EPV:g})" if valid else
                   f"Harrell's optimism-corrected AUC withheld: {epv:.2g} events per candidate variable "
                   f"(< {HARRELL_MIN_EPV:g}), where its refits fit their resamples almost perfectly and it "
                   "overstates the AUC; the .632+ bootstrap AUC takes its place")
    return out


def evaluate_models(frames: dict[str, Any], y_all, specs: list[ModelSpec], settings: EvaluationSettings | None = None,
                    cancel=None, progress=None) -> dict[str, Any]:
    """``frames[spec.kind]`` holds each model's features (index patient_id); ``y_all`` a Series
    indexed by patient_id (NaN = unknown outcome, dropped)."""
    import warnings

    settings = settings or EvaluationSettings()
    results: dict[str, Any] = {"settings": settings.to_dict(), "models": {}}
    for spec in specs:
        X = frames[spec.kind]
        y = y_all.reindex(X.index)
        keep = y.notna().to_numpy()
        X, y = X.loc[keep], y[keep].to_numpy().astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results["models"][spec.name] = evaluate_model(spec, X, y, settings, cancel)
        if progress is not None:
            progress.update(1, spec.name)
    results["delong"] = delong_table(results["models"])
    if settings.permutation_model and settings.permutation_model in results["models"]:
        spec = next(s for s in specs if s.name == settings.permutation_model)
        X = frames[spec.kind]
        y = y_all.reindex(X.index)
        keep = y.notna().to_numpy()
        X, y = X.loc[keep], y[keep].to_numpy().astype(int)

        def oof_auc(labels):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cv = cross_validated_predictions(spec, X, labels, n_splits=settings.n_splits, seed=settings.seed)
            return roc_auc(labels, cv["oof"])

        results["permutation"] = {"model": spec.name, **permutation_test(
            oof_auc, y, n_permutations=settings.n_permutations, seed=settings.seed)}
    return results


def delong_table(models: dict[str, Any]) -> list[dict[str, Any]]:
    """Paired DeLong tests between every pair of models, on the patients they share."""
    rows = []
    names = list(models)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ma, mb = models[a], models[b]
            common = sorted(set(ma["patient_ids"]) & set(mb["patient_ids"]))
            ia = {pid: k for k, pid in enumerate(ma["patient_ids"])}
            ib = {pid: k for k, pid in enumerate(mb["patient_ids"])}
            y = np.array([ma["y"][ia[c]] for c in common])
            if len(common) < 4 or y.min() == y.max():
                continue
            pa = np.array([ma["oof"][ia[c]] for c in common])
            pb = np.array([mb["oof"][ib[c]] for c in common])
            rows.append({"model_1": a, "model_2": b, "n": len(common), **delong_paired(y, pa, pb)})
    return rows
