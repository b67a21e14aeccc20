"""Maximum-likelihood logistic regression by Newton-Raphson with Wald standard errors.

Used where we need classical inference (odds ratios with 95% CIs, AIC for stepwise selection, the
calibration slope and intercept with an offset); scikit-learn's LogisticRegression is penalised and
gives no standard errors.  Tests compare it with statsmodels' GLM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LogitFit:
    params: np.ndarray  # intercept first when fitted with add_intercept=True
    bse: np.ndarray  # Wald standard errors
    llf: float  # log-likelihood
    n_iter: int
    converged: bool

    @property
    def aic(self) -> float:
        return 2.0 * len(self.params) - 2.0 * self.llf

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        from scipy import stats

        z = stats.norm.ppf(1 - alpha / 2)
        return np.column_stack([self.params - z * self.bse, self.params + z * self.bse])

    @property
    def pvalues(self) -> np.ndarray:
        from scipy import stats

        with np.errstate(divide="ignore", invalid="ignore"):
            return 2 * stats.norm.sf(np.abs(self.params / self.bse))


def sigmoid(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def logit(p: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(p / (1 - p))


def fit_logit(X: np.ndarray, y: np.ndarray, *, offset: np.ndarray | None = None,
              add_intercept: bool = True, max_iter: int = 100, tol: float = 1e-10,
              ridge: float = 0.0) -> LogitFit:
    """Fit P(y=1) = sigmoid(offset + [1, X] @ beta) by Newton-Raphson (IRLS).

    ``ridge`` adds a tiny L2 term only to keep the Hessian invertible under (quasi-)separation;
    the default 0 gives the plain MLE that statsmodels reports.
    """
    y = np.asarray(y, dtype=float).ravel()
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if add_intercept:
        X = np.column_stack([np.ones(len(y)), X])
    off = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=float).ravel()
    beta = np.zeros(X.shape[1])
    llf_old = -np.inf
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (reported as n_iter)
        eta = off + X @ beta
        p = sigmoid(eta)
        w = p * (1 - p)
        grad = X.T @ (y - p) - ridge * beta
        hess = (X * w[:, None]).T @ X + ridge * np.eye(X.shape[1])
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        # step halving keeps the likelihood increasing (robust near separation)
        for _ in range(30):
            cand = beta + step
            llf = _loglik(y, off + X @ cand) - 0.5 * ridge * cand @ cand
            if llf >= llf_old - 1e-12:
                break
            step = step / 2
        beta = cand
        if abs(llf - llf_old) < tol * (abs(llf) + tol) and np.max(np.abs(step)) < 1e-6:
            converged = True
            break
        llf_old = llf
    p = sigmoid(off + X @ beta)
    w = p * (1 - p)
    hess = (X * w[:, None]).T @ X + ridge * np.eye(X.shape[1])
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(hess)
    bse = np.sqrt(np.clip(np.diag(cov), 0, None))
    return LogitFit(params=beta, bse=bse, llf=float(_loglik(y, off + X @ beta)), n_iter=n_iter,
                    converged=converged)


def _loglik(y: np.ndarray, eta: np.ndarray) -> float:
    # log(1 + exp(eta)) computed stably
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))
