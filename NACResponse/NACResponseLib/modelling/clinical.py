"""Clinical model: encoding of clinical variables and backward stepwise logistic regression by AIC
with odds ratios and 95% CIs: maximum likelihood with Wald CIs, or, when the data are separated (the
ML estimate is infinite), Firth's penalised likelihood with profile penalised-likelihood CIs (see
logit.py)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .logit import _firth_constrained, fit_firth, fit_logit, separation_check, sigmoid


def _as_table(X):
    """The encoder reads column types, so it needs a table: a bare array gets columns x0, x1, ..."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return X
    a = np.asarray(X)
    return pd.DataFrame(a.reshape(len(a), -1)).rename(columns=lambda i: f"x{i}")


def _numeric(dtype) -> bool:
    import pandas as pd

    return pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype)


class ClinicalEncoder(TransformerMixin, BaseEstimator):
    """Numeric columns pass through as float; text columns become 0/1 indicators ``<col>=<level>``
    for every level but the first (sorted) one seen in training.  Unknown levels at prediction time
    give all-zero indicators (the reference level); missing and infinite values become NaN for the
    imputer.  It returns a DataFrame itself: its input has mixed column types."""

    def fit(self, X, y=None):
        import pandas as pd

        X = _as_table(X)
        self.feature_names_in_ = np.array([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.levels_: dict[str, list[str]] = {}
        for c, dtype in X.dtypes.items():
            if _numeric(dtype):
                continue
            col = X[c]
            num = pd.to_numeric(col, errors="coerce")
            if num.notna().sum() == col.notna().sum():
                continue
            self.levels_[str(c)] = sorted({str(v) for v in col.dropna()})
        self.names_out_ = []
        for c in self.feature_names_in_:
            if c in self.levels_:
                self.names_out_ += [f"{c}={lv}" for lv in self.levels_[c][1:]]
            else:
                self.names_out_.append(c)
        return self

    def transform(self, X):
        import pandas as pd

        check_is_fitted(self, "levels_")
        X = _as_table(X)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"ClinicalEncoder: input lacks column(s) {missing[:5]}")
        plain = [c for c in self.feature_names_in_ if c not in self.levels_]
        block = X[plain]
        if not all(_numeric(d) for d in block.dtypes):
            block = block.apply(pd.to_numeric, errors="coerce")
        values = dict(zip(plain, block.to_numpy(dtype=float, na_value=np.nan).T))
        out = []
        for c in self.feature_names_in_:
            if c in self.levels_:
                s = X[c].astype(object)
                out += [np.where(s.isna(), np.nan, (s.astype(str) == lv).astype(float)) for lv in self.levels_[c][1:]]
            else:
                out.append(values[c])
        a = np.column_stack(out) if out else np.empty((len(X), 0))
        a[~np.isfinite(a)] = np.nan
        return pd.DataFrame(a, columns=self.names_out_, index=X.index)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "names_out_")
        return np.array(self.names_out_, dtype=object)


def _firth_restricted(fit, j: int) -> float:
    """Penalised log-likelihood of a Firth fit maximised with coefficient ``j`` held at 0."""
    return _firth_constrained(fit.X, fit.y, j, 0.0, fit.params)


class BackwardStepwiseLogit(ClassifierMixin, BaseEstimator):
    """Backward elimination by AIC: start from all variables, repeatedly drop the one whose removal
    lowers the AIC most, stop when no removal lowers it.  ``keep`` names variables never dropped.
    The final model's odds ratios with 95% CIs are in ``odds_ratios_``.

    ``firth``: ``"auto"`` (default) fits by maximum likelihood unless the full model's data are
    (quasi-)completely separated - exact linear-programming check, see ``separation_check`` - and then
    uses Firth's penalised likelihood for every model of the elimination; ``"always"`` / ``"never"``
    force one estimator.  A separated sub-model implies a separated full model (set the dropped
    coefficients to 0), so checking the full model decides for the whole run.  A variable is dropped
    when that lowers the AIC: for ML, AIC = 2k - 2 l of the refitted model (Delta AIC = 2 - LR chi2);
    for Firth, Delta AIC = 2 - PLR chi2, the penalised likelihood ratio of the current model against
    itself with that coefficient held at 0 (the same penalty on both sides, logistf's nested test;
    comparing refits with their own penalties would depend on covariate units).  ``aic_`` is then
    2k - 2 l* of the final Firth fit, l* its penalised log-likelihood (``history_`` records each
    step's ``delta_aic``, the criterion; Firth AICs of different models are not comparable).  ML fits
    report Wald CIs and p-values; Firth fits profile penalised-likelihood CIs and penalised
    likelihood-ratio p-values (Heinze & Schemper 2002).  ``estimator_`` says which was used and
    ``separation_`` why."""

    def __init__(self, keep: tuple[str, ...] = (), alpha: float = 0.05, ridge: float = 1e-8,
                 firth: str = "auto"):
        self.keep = keep
        self.alpha = alpha
        self.ridge = ridge
        self.firth = firth

    def _fit_one(self, a, y):
        if self.estimator_ == "firth":
            return fit_firth(a, y)
        return fit_logit(a, y, ridge=self.ridge)

    def fit(self, X, y):
        a = validate_data(self, X, dtype=float)
        names = [str(c) for c in getattr(self, "feature_names_in_", [f"x{i}" for i in range(a.shape[1])])]
        y = np.asarray(y).astype(int).ravel()
        self.classes_ = np.array([0, 1])
        if self.firth not in ("auto", "always", "never"):
            raise ValueError(f"firth must be 'auto', 'always' or 'never', not {self.firth!r}")
        current = list(range(a.shape[1]))
        sep = separation_check(a, y, names=names)
        ml = fit_logit(a, y, ridge=self.ridge)
        p_hat = sigmoid(np.column_stack([np.ones(len(y)), a]) @ ml.params)
        sep["ml_converged"] = bool(ml.converged)
        sep["ml_max_abs_coef"] = float(np.max(np.abs(ml.params)))
        sep["ml_fitted_0_or_1"] = int(np.sum((p_hat < 1e-8) | (p_hat > 1 - 1e-8)))
        detected = sep["separated"] or not ml.converged
        self.separation_ = {"detected": bool(detected), **sep}
        self.estimator_ = ("firth" if self.firth == "always" or (self.firth == "auto" and detected)
                           else "ml")
        fit = ml if self.estimator_ == "ml" else self._fit_one(a, y)
        self.history_ = [{"removed": None, "aic": fit.aic, "delta_aic": None}]
        while current:
            best = None  # (delta AIC of dropping j, j, refit or None)
            for pos, j in enumerate(current):
                if names[j] in self.keep:
                    continue
                trial = [k for k in current if k != j]
                if self.estimator_ == "firth":
                    # nested penalised likelihood ratio (logistf's anova "nested"): b_j = 0 within the
                    # current model, so both sides carry the same penalty and the comparison does not
                    # depend on the units of the covariates (a refit's own penalty would)
                    chi2 = 2.0 * (fit.pllf - _firth_restricted(fit, pos + 1))
                    delta, f = chi2 - 2.0, None  # AIC change of dropping j
                else:
                    f = self._fit_one(a[:, trial], y)
                    delta = f.aic - fit.aic
                if best is None or delta < best[0]:
                    best = (delta, j, f)
            if best is None or best[0] >= 0:
                break
            current.remove(best[1])
            fit = best[2] if best[2] is not None else self._fit_one(a[:, current], y)
            self.history_.append({"removed": names[best[1]], "aic": fit.aic,
                                  "delta_aic": float(best[0])})
        self.selected_ = [names[j] for j in current]
        self.fit_ = fit
        self.ci_method_ = "profile penalised likelihood" if self.estimator_ == "firth" else "wald"
        self.intercept_ = np.array([fit.params[0]])
        coef = np.zeros(a.shape[1])
        coef[current] = fit.params[1:]
        self.coef_ = coef[None, :]
        self.aic_ = fit.aic
        self._or_cache = None
        return self

    @property
    def odds_ratios_(self):
        """Odds ratios with 95% CIs of the final model (computed on first use: profile CIs of a Firth
        fit cost a few constrained fits per coefficient, wasted on cross-validation refits)."""
        if getattr(self, "_or_cache", None) is None:
            self._or_cache = self._or_table(self.fit_)
        return self._or_cache

    def _or_table(self, fit):
        import pandas as pd

        ci = fit.conf_int(self.alpha, method="profile" if fit.method == "firth" else "wald")
        with np.errstate(over="ignore"):  # a separated variable has an infinite OR bound under ML
            ci = np.exp(ci)
        names = ["(intercept)", *self.selected_]
        return pd.DataFrame({"variable": names, "coef": fit.params, "se": fit.bse,
                             "odds_ratio": np.exp(np.clip(fit.params, -700, 700)),
                             "or_ci_low": ci[:, 0], "or_ci_high": ci[:, 1], "p": fit.pvalues})

    def decision_function(self, X):
        check_is_fitted(self, "coef_")
        return self.intercept_[0] + validate_data(self, X, dtype=float, reset=False) @ self.coef_[0]

    def predict_proba(self, X):
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
