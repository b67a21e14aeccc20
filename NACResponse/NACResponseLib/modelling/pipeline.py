"""Model pipelines and (nested) cross-validation.

Every data-dependent step (imputation, selection, scaling, LASSO, tuning) sits inside one
scikit-learn Pipeline, so cross-validation refits all of it on each training fold and the
validation fold never influences which features are chosen.  With ``tune=True`` an inner
cross-validation (GridSearchCV) inside every outer training fold picks the hyper-parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .classifiers import PARAM_GRIDS, make_classifier
from .clinical import BackwardStepwiseLogit, ClinicalEncoder
from .selection import NearConstantFilter, SelectionConfig, median_imputer, selection_steps


@dataclass
class ModelSpec:
    """What to fit: ``kind`` (clinical/radiomics/deep/combined or any label), classifier, selection."""

    kind: str
    classifier: str = "logistic"
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    whitelist: dict[str, bool] | None = None
    task: str = "classification"
    random_state: int = 0
    stepwise_clinical: bool = True  # clinical + logistic -> backward stepwise logistic by AIC

    @property
    def name(self) -> str:
        return self.kind if self.classifier == "logistic" else f"{self.kind}_{self.classifier}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "classifier": self.classifier, "selection": self.selection.to_dict(),
                "task": self.task, "random_state": self.random_state,
                "icc_whitelist": None if self.whitelist is None else int(sum(self.whitelist.values())),
                "stepwise_clinical": self.stepwise_clinical}


def build_pipeline(spec: ModelSpec):
    """An unfitted Pipeline for ``spec``; every step returns a DataFrame (feature names kept)."""
    from sklearn.pipeline import Pipeline

    if spec.kind == "clinical" and spec.classifier == "logistic" and spec.stepwise_clinical \
            and spec.task == "classification":
        steps = [("encode", ClinicalEncoder()), ("impute", median_imputer()),
                 ("near_constant", NearConstantFilter(spec.selection.min_variance, spec.selection.max_mode_fraction)),
                 ("model", BackwardStepwiseLogit())]
    else:
        steps = [("encode", ClinicalEncoder()),
                 *selection_steps(spec.selection, whitelist=spec.whitelist, task=spec.task,
                                  random_state=spec.random_state),
                 ("model", make_classifier(spec.classifier, spec.random_state, task=spec.task))]
    return Pipeline(steps).set_output(transform="pandas")


def _splitter(y, n_splits: int, seed: int, task: str):
    from sklearn.model_selection import KFold, StratifiedKFold

    if task == "classification":
        n_min = int(min(np.sum(y == 1), np.sum(y == 0)))
        if n_min < 2:
            raise ValueError(f"cross-validation needs at least 2 cases of each class (smallest class has {n_min})")
        return StratifiedKFold(min(n_splits, n_min), shuffle=True, random_state=seed)
    return KFold(min(n_splits, len(y)), shuffle=True, random_state=seed)


def _predict(est, X, task: str) -> np.ndarray:
    return est.predict_proba(X)[:, 1] if task == "classification" else est.predict(X)


def fit_model(spec: ModelSpec, X, y, *, tune: bool = False, inner_splits: int = 3, seed: int = 0):
    """Fit (optionally tuning by inner CV) on all of X, y; returns the fitted Pipeline."""
    est = build_pipeline(spec)
    grid = PARAM_GRIDS.get(spec.classifier) if tune else None
    if grid and not isinstance(est.named_steps["model"], BackwardStepwiseLogit):
        from sklearn.model_selection import GridSearchCV

        search = GridSearchCV(est, {f"model__{k}": v for k, v in grid.items()},
                              cv=_splitter(np.asarray(y), inner_splits, seed + 1, spec.task),
                              scoring="roc_auc" if spec.task == "classification" else "neg_mean_squared_error",
                              error_score=np.nan)
        search.fit(X, y)
        return search.best_estimator_
    return est.fit(X, y)


def fold_threshold(spec: ModelSpec, X, y, weights: dict[str, float], *, inner_splits: int = 3,
                   seed: int = 0, tune: bool = False) -> dict[str, Any]:
    """Weighted-Youden thresholds chosen from one training fold alone, the way ``model train``
    chooses a saved model's: on out-of-fold predictions of an inner cross-validation.  A fold too
    small for that (an inner fold with too few cases of a class to fit) uses its in-sample
    predictions instead; ``source`` says which."""
    from .evaluation import weighted_youden

    y = np.asarray(y).astype(int)
    try:
        p, source = np.zeros(len(y)), "inner CV"
        for train, test in _splitter(y, inner_splits, seed + 1, spec.task).split(np.zeros(len(y)), y):
            p[test] = _predict(fit_model(spec, X.iloc[train], y[train], tune=tune, seed=seed),
                               X.iloc[test], spec.task)
    except ValueError:
        p, source = _predict(fit_model(spec, X, y, tune=tune, seed=seed), X, spec.task), "in-sample"
    return {"thresholds": {k: weighted_youden(y, p, w)["threshold"] for k, w in weights.items()},
            "source": source}


def cross_validated_predictions(spec: ModelSpec, X, y, *, n_splits: int = 5, n_repeats: int = 1,
                                seed: int = 0, tune: bool = False, inner_splits: int = 3,
                                youden_weights: dict[str, float] | None = None, cancel=None) -> dict[str, Any]:
    """Out-of-fold predictions (mean over repeats) and the features kept in each training fold.

    ``youden_weights`` ({name: w}): each training fold also chooses its own weighted-Youden
    threshold (``fold_threshold``) and calls its validation cases with it, so sensitivity,
    specificity, PPV and NPV are scored on cases that did not choose the threshold.  ``called``
    holds, per name, the fraction of repeats that called each case positive and
    ``case_thresholds`` the mean threshold applied to it."""
    import warnings

    y = np.asarray(y, dtype=float).ravel()
    yy = y.astype(int) if spec.task == "classification" else y
    oof = np.zeros((n_repeats, len(y)))
    names = list(youden_weights or {})
    called = {k: np.zeros((n_repeats, len(y))) for k in names}
    applied = {k: np.zeros((n_repeats, len(y))) for k in names}
    fold_features: list[list[str]] = []
    fold_thresholds: list[dict[str, Any]] = []
    for r in range(n_repeats):
        for train, test in _splitter(yy, n_splits, seed + r, spec.task).split(np.zeros(len(y)), yy):
            if cancel is not None:
                cancel.check()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = fit_model(spec, X.iloc[train], yy[train], tune=tune, inner_splits=inner_splits,
                                seed=seed + r)
                chosen = (fold_threshold(spec, X.iloc[train], yy[train], youden_weights, tune=tune,
                                         inner_splits=inner_splits, seed=seed + r) if names else None)
            oof[r, test] = _predict(est, X.iloc[test], spec.task)
            fold_features.append(selected_features(est))
            if chosen is not None:
                fold_thresholds.append(chosen)
                for k in names:
                    applied[k][r, test] = chosen["thresholds"][k]
                    called[k][r, test] = oof[r, test] >= chosen["thresholds"][k]
    out = {"oof": oof.mean(axis=0), "fold_features": fold_features, "n_splits": n_splits,
           "n_repeats": n_repeats, "seed": seed, "tuned": tune}
    if names:
        out.update(called={k: v.mean(axis=0) for k, v in called.items()},
                   case_thresholds={k: v.mean(axis=0) for k, v in applied.items()},
                   fold_thresholds=fold_thresholds)
    return out


def selected_features(pipe) -> list[str]:
    """Names of the features that reach the final estimator."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(pipe)
    model = pipe.named_steps["model"]
    if isinstance(model, BackwardStepwiseLogit):
        return list(model.selected_)
    last = pipe.steps[-2][1]
    return [str(c) for c in last.get_feature_names_out()]


def selection_report(pipe) -> dict[str, Any]:
    """How many features survived each step, and the final features with their coefficients."""
    counts = []
    for name, step in pipe.steps[:-1]:
        n_in = len(getattr(step, "feature_names_in_", []))
        n_out = len(step.get_feature_names_out())
        counts.append({"step": name, "n_in": n_in, "n_out": n_out})
    model = pipe.named_steps["model"]
    feats = selected_features(pipe)
    coef = None
    if isinstance(model, BackwardStepwiseLogit):
        table = model.odds_ratios_.to_dict(orient="records")
        return {"steps": counts, "features": feats, "odds_ratios": table, "aic": model.aic_,
                "estimator": model.estimator_, "ci_method": model.ci_method_,
                "separation": model.separation_}
    if hasattr(model, "coef_"):
        coef = np.ravel(model.coef_).tolist()
    elif hasattr(model, "feature_importances_"):
        coef = np.ravel(model.feature_importances_).tolist()
    return {"steps": counts, "features": feats,
            "weights": dict(zip(feats, coef)) if coef is not None and len(coef) == len(feats) else None,
            "weight_kind": "coefficient" if hasattr(model, "coef_") else
            ("importance" if hasattr(model, "feature_importances_") else None)}
