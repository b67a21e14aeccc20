"""Clinical model: encoding of clinical variables and backward stepwise logistic regression by AIC
with odds ratios and Wald 95% CIs (maximum likelihood, see logit.py)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from .logit import fit_logit, sigmoid
from .selection import _frame


class ClinicalEncoder(TransformerMixin, BaseEstimator):
    """Numeric columns pass through as float; text columns become 0/1 indicators ``<col>=<level>``
    for every level but the first (sorted) one seen in training.  Unknown levels at prediction time
    give all-zero indicators (the reference level); missing values stay NaN for the imputer."""

    def fit(self, X, y=None):
        import pandas as pd

        X = _frame(X)
        self.feature_names_in_ = [str(c) for c in X.columns]
        self.levels_: dict[str, list[str]] = {}
        for c in X.columns:
            col = X[c]
            if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
                continue
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

        X = _frame(X, self.feature_names_in_)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"ClinicalEncoder: input lacks column(s) {missing[:5]}")
        out = {}
        for c in self.feature_names_in_:
            col = X[c]
            if c in self.levels_:
                s = col.astype(object)
                for lv in self.levels_[c][1:]:
                    out[f"{c}={lv}"] = np.where(s.isna(), np.nan, (s.astype(str) == lv).astype(float))
            else:
                out[c] = pd.to_numeric(col, errors="coerce").astype(float).to_numpy()
        return pd.DataFrame(out, columns=self.names_out_, index=X.index)

    def get_feature_names_out(self, input_features=None):
        return np.array(self.names_out_, dtype=object)


class BackwardStepwiseLogit(ClassifierMixin, BaseEstimator):
    """Backward elimination by AIC: start from all variables, repeatedly drop the one whose removal
    lowers the AIC most, stop when no removal lowers it.  ``keep`` names variables never dropped.
    The final model's odds ratios with Wald CIs are in ``odds_ratios_``."""

    def __init__(self, keep: tuple[str, ...] = (), alpha: float = 0.05, ridge: float = 1e-8):
        self.keep = keep
        self.alpha = alpha
        self.ridge = ridge

    def fit(self, X, y):
        X = _frame(X)
        self.feature_names_in_ = [str(c) for c in X.columns]
        a = X.to_numpy(dtype=float)
        y = np.asarray(y).astype(int).ravel()
        self.classes_ = np.array([0, 1])
        current = list(range(a.shape[1]))
        fit = fit_logit(a[:, current], y, ridge=self.ridge)
        self.history_ = [{"removed": None, "aic": fit.aic}]
        while current:
            best = None
            for j in current:
                if self.feature_names_in_[j] in self.keep:
                    continue
                trial = [k for k in current if k != j]
                f = fit_logit(a[:, trial], y, ridge=self.ridge)
                if best is None or f.aic < best[1].aic:
                    best = (j, f)
            if best is None or best[1].aic >= fit.aic:
                break
            current.remove(best[0])
            fit = best[1]
            self.history_.append({"removed": self.feature_names_in_[best[0]], "aic": fit.aic})
        self.selected_ = [self.feature_names_in_[j] for j in current]
        self.fit_ = fit
        self.intercept_ = np.array([fit.params[0]])
        coef = np.zeros(a.shape[1])
        coef[current] = fit.params[1:]
        self.coef_ = coef[None, :]
        self.aic_ = fit.aic
        self.odds_ratios_ = self._or_table(fit)
        return self

    def _or_table(self, fit):
        import pandas as pd

        ci = fit.conf_int(self.alpha)
        with np.errstate(over="ignore"):  # a separated variable has an infinite OR bound
            ci = np.exp(ci)
        names = ["(intercept)", *self.selected_]
        return pd.DataFrame({"variable": names, "coef": fit.params, "se": fit.bse,
                             "odds_ratio": np.exp(np.clip(fit.params, -700, 700)),
                             "or_ci_low": ci[:, 0], "or_ci_high": ci[:, 1], "p": fit.pvalues})

    def decision_function(self, X):
        X = _frame(X, self.feature_names_in_).loc[:, self.feature_names_in_]
        return self.intercept_[0] + X.to_numpy(dtype=float) @ self.coef_[0]

    def predict_proba(self, X):
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
