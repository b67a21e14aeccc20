"""Leakage-free feature selection as scikit-learn transformers (fitted on training folds only).

Order: ICC whitelist -> near-constant -> Spearman redundancy (keep the feature more
associated with the target) -> Mann-Whitney U (Spearman test for a continuous target) -> z-score
-> [optional PCA] -> LASSO with k-fold CV choosing lambda.  Every threshold is a parameter.

The selectors are ``SelectorMixin`` transformers; imputation, z-score and PCA are scikit-learn's
own.  ``build_pipeline`` sets ``set_output(transform="pandas")`` so feature names survive the
pipeline (they are what the report, the artefact and per-case explanations show).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..columns import feature_id


class ColumnSelector(SelectorMixin, BaseEstimator):
    """Base class: a subclass's ``fit`` calls ``_validated`` and sets a boolean ``support_``."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _validated(self, X) -> np.ndarray:
        """The training matrix as floats; records ``feature_names_in_`` / ``n_features_in_``."""
        return validate_data(self, X, dtype=float, ensure_all_finite="allow-nan", ensure_min_features=0)

    def _input_names(self) -> list[str]:
        return [str(c) for c in getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])]

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return np.asarray(self.support_, dtype=bool)


class ICCWhitelist(ColumnSelector):
    """Keep radiomics columns whose feature id (:func:`NACResponseLib.columns.feature_id`) passed the
    reproducibility (ICC) screen.

    ``whitelist``: {feature id: kept(bool)} from the ``icc_whitelist`` table; ``None`` keeps all.
    Columns whose feature id the table does not mention (deep or clinical features, or radiomics the
    ICC study did not cover) follow ``unknown`` ("keep" or "drop").
    """

    def __init__(self, whitelist: dict[str, bool] | None = None, unknown: str = "keep"):
        self.whitelist = whitelist
        self.unknown = unknown

    def fit(self, X, y=None):
        if self.unknown not in ("keep", "drop"):
            raise ValueError(f"unknown must be 'keep' or 'drop', got {self.unknown!r}")
        self._validated(X)
        names = self._input_names()
        if self.whitelist is None:
            self.support_ = np.ones(len(names), bool)
            return self
        keep = []
        for c in names:
            s = feature_id(c)
            if s is not None and s in self.whitelist:
                keep.append(bool(self.whitelist[s]))
            else:
                keep.append(self.unknown == "keep")
        self.support_ = np.array(keep, bool)
        return self


class NearConstantFilter(ColumnSelector):
    """Drop features with (almost) no variation: variance <= ``min_variance`` or one value shared
    by more than ``max_mode_fraction`` of the training cases."""

    def __init__(self, min_variance: float = 1e-12, max_mode_fraction: float = 0.95):
        self.min_variance = min_variance
        self.max_mode_fraction = max_mode_fraction

    def fit(self, X, y=None):
        a = self._validated(X)
        var = np.nanvar(a, axis=0)
        mode_frac = np.array([np.unique(col[np.isfinite(col)], return_counts=True)[1].max() / max(1, np.isfinite(col).sum())
                              if np.isfinite(col).any() else 1.0 for col in a.T])
        self.support_ = (var > self.min_variance) & (mode_frac <= self.max_mode_fraction)
        return self


def _spearman_matrix(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    r = rankdata(a, axis=0)
    r = r - r.mean(axis=0)
    sd = np.sqrt((r ** 2).sum(axis=0))
    sd[sd == 0] = 1.0
    r = r / sd
    return r.T @ r


def target_association(X, y) -> np.ndarray:
    """|Spearman rho| of each feature with the target (binary or continuous)."""
    a = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    corr = _spearman_matrix(np.column_stack([y, a]))
    return np.abs(corr[0, 1:])


class SpearmanRedundancy(ColumnSelector):
    """Among features correlated with |Spearman rho| > ``threshold``, keep the one more associated
    with the target: greedy over features sorted by |rho with y|, a feature is kept unless it is
    too correlated with one already kept."""

    def __init__(self, threshold: float = 0.80):
        self.threshold = threshold

    def fit(self, X, y):
        a = self._validated(X)
        assoc = target_association(a, y)
        self.association_ = assoc
        corr = np.abs(_spearman_matrix(a))
        kept: list[int] = []
        blocked = np.zeros(a.shape[1], bool)  # too correlated with a feature already kept
        for j in np.argsort(-assoc, kind="mergesort"):
            if not blocked[j]:
                kept.append(int(j))
                blocked |= corr[j] > self.threshold
        self.support_ = np.zeros(a.shape[1], bool)
        self.support_[kept] = True
        return self


class UnivariateFilter(ColumnSelector):
    """Keep features with univariate p < ``alpha``: Mann-Whitney U for a binary target, Spearman's
    test for a continuous one.  If none pass, the ``min_keep`` smallest p-values are kept so the
    model can still be fitted (recorded in ``fallback_``)."""

    def __init__(self, alpha: float = 0.05, min_keep: int = 1, task: str = "classification"):
        self.alpha = alpha
        self.min_keep = min_keep
        self.task = task

    def fit(self, X, y):
        from scipy import stats

        a = self._validated(X)
        y = np.asarray(y).ravel()
        if a.shape[1] == 0:
            self.pvalues_ = np.zeros(0)
            self.support_ = np.zeros(0, bool)
            self.fallback_ = False
            return self
        if self.task == "classification":
            with np.errstate(all="ignore"):
                p = stats.mannwhitneyu(a[y == 1], a[y == 0], axis=0, alternative="two-sided").pvalue
        else:
            p = np.array([stats.spearmanr(col, y).pvalue for col in a.T])
        p = np.where(np.isfinite(p), p, 1.0)
        self.pvalues_ = p
        support = p < self.alpha
        self.fallback_ = bool(support.sum() < min(self.min_keep, len(p)))
        if self.fallback_:
            support = np.zeros(len(p), bool)
            support[np.argsort(p, kind="mergesort")[: self.min_keep]] = True
        self.support_ = support
        return self


class FoldPCA(PCA):
    """scikit-learn's PCA with ``n_components`` capped at what the training fold offers (the
    selection steps before it decide how many features reach it); components are named pc1, pc2..."""

    def _fit(self, X):
        wanted = self.n_components
        self.n_components = min(int(wanted), *np.shape(X))
        try:
            return super()._fit(X)
        finally:
            self.n_components = wanted

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "components_")
        return np.array([f"pc{i + 1}" for i in range(self.n_components_)], dtype=object)


class LassoSelector(ColumnSelector):
    """L1-penalised logistic (binary target) or linear (continuous) regression with k-fold CV
    choosing lambda; keeps features with non-zero coefficients (``coef_`` holds them).  If the CV
    optimum keeps none, the single feature with the largest |coefficient| along the path at the
    weakest penalty is kept (``fallback_``)."""

    def __init__(self, cv: int = 10, n_lambdas: int = 20, task: str = "classification",
                 random_state: int = 0, max_iter: int = 5000):
        self.cv = cv
        self.n_lambdas = n_lambdas
        self.task = task
        self.random_state = random_state
        self.max_iter = max_iter

    def fit(self, X, y):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import KFold, StratifiedKFold

        a = self._validated(X)
        y = np.asarray(y).ravel()
        self.fallback_ = False
        if a.shape[1] == 0:
            self.coef_ = np.zeros(0)
            self.support_ = np.zeros(0, bool)
            return self
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            if self.task == "classification":
                from sklearn.linear_model import LogisticRegressionCV

                n_min = int(min(np.sum(y == 1), np.sum(y == 0)))
                folds = StratifiedKFold(max(2, min(self.cv, n_min)), shuffle=True, random_state=self.random_state)
                model = LogisticRegressionCV(Cs=self.n_lambdas, cv=folds, penalty="l1", solver="liblinear",
                                             scoring="roc_auc", max_iter=self.max_iter,
                                             random_state=self.random_state)
                model.fit(a, y.astype(int))
                coef = model.coef_.ravel()
                self.lambda_ = float(1.0 / model.C_[0])
                path = model.coefs_paths_[1] if 1 in model.coefs_paths_ else next(iter(model.coefs_paths_.values()))
                weakest = np.abs(path[:, -1, : a.shape[1]]).mean(axis=0)
            else:
                import inspect

                from sklearn.linear_model import Lasso, LassoCV

                folds = KFold(max(2, min(self.cv, len(y))), shuffle=True, random_state=self.random_state)
                grid = ({"n_alphas": self.n_lambdas} if "n_alphas" in inspect.signature(LassoCV).parameters
                        else {"alphas": self.n_lambdas})
                model = LassoCV(cv=folds, max_iter=self.max_iter, random_state=self.random_state, **grid)
                model.fit(a, y.astype(float))
                coef = model.coef_.ravel()
                self.lambda_ = float(model.alpha_)
                weakest = np.abs(Lasso(alpha=float(np.min(model.alphas_)), max_iter=self.max_iter).fit(a, y).coef_)
        self.coef_ = coef
        support = coef != 0
        if not support.any():
            self.fallback_ = True
            support[int(np.argmax(weakest))] = True
        self.support_ = support
        return self


@dataclass
class SelectionConfig:
    """Thresholds of the selection chain (all configurable from the CLI and the Slicer module)."""

    icc_unknown: str = "keep"
    min_variance: float = 1e-12
    max_mode_fraction: float = 0.95
    spearman_threshold: float = 0.80
    univariate_alpha: float = 0.05
    min_keep: int = 1
    pca_components: int | None = None
    lasso: bool = True
    lasso_cv: int = 10
    lasso_lambdas: int = 20

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def median_imputer():
    """Training median per column; a column all-missing in training is imputed with 0 (kept, so
    the feature schema does not depend on the fold)."""
    from sklearn.impute import SimpleImputer

    return SimpleImputer(strategy="median", keep_empty_features=True)


def selection_steps(config: SelectionConfig | None = None, *, whitelist: dict[str, bool] | None = None,
                    task: str = "classification", random_state: int = 0) -> list[tuple[str, Any]]:
    """The named pipeline steps, in the issue's order (imputation first: it is fitted too)."""
    from sklearn.preprocessing import StandardScaler

    c = config or SelectionConfig()
    steps: list[tuple[str, Any]] = [
        ("impute", median_imputer()),
        ("icc", ICCWhitelist(whitelist=whitelist, unknown=c.icc_unknown)),
        ("near_constant", NearConstantFilter(c.min_variance, c.max_mode_fraction)),
        ("redundancy", SpearmanRedundancy(c.spearman_threshold)),
        ("univariate", UnivariateFilter(c.univariate_alpha, c.min_keep, task)),
        ("zscore", StandardScaler()),
    ]
    if c.pca_components:
        steps.append(("pca", FoldPCA(int(c.pca_components), svd_solver="full")))
    if c.lasso:
        steps.append(("lasso", LassoSelector(c.lasso_cv, c.lasso_lambdas, task, random_state)))
    return steps
