"""Maximum-likelihood logistic regression by Newton-Raphson with Wald standard errors, Firth's
bias-reduced (penalised-likelihood) logistic regression with profile penalised-likelihood CIs, and
a linear-programming check for (quasi-)complete separation.

Used where we need classical inference (odds ratios with 95% CIs, AIC for stepwise selection, the
calibration slope and intercept with an offset); scikit-learn's LogisticRegression is penalised and
gives no standard errors.  Tests compare the ML fit with statsmodels' GLM and the Firth fit with a
direct numerical maximisation of the penalised log-likelihood.

Firth (1993), Heinze & Schemper (2002): maximise l*(b) = l(b) + 0.5 log|I(b)|, I(b) = X'W(b)X.  The
estimates are finite even when the data are separated (where the ML estimate does not exist), and
the profile penalised-likelihood CIs {b_j : 2 [l*(b_hat) - max_{b_-j} l*(b_j, b_-j)] <= chi2_1(1-a)}
are the ones Heinze & Schemper recommend (Wald CIs are poor under separation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LogitFit:
    params: np.ndarray  # intercept first when fitted with add_intercept=True
    bse: np.ndarray  # Wald standard errors
    llf: float  # log-likelihood
    n_iter: int
    converged: bool
    method: str = "ml"  # "ml" or "firth"
    pllf: float | None = None  # penalised log-likelihood l + 0.5 log|I| (Firth fits only)
    X: np.ndarray | None = field(default=None, repr=False)  # design (with intercept), Firth fits
    y: np.ndarray | None = field(default=None, repr=False)

    @property
    def aic(self) -> float:
        """2k - 2 l for ML; for Firth fits the penalised log-likelihood l* replaces l.  Firth AICs of
        models with different columns carry different penalties: the stepwise selection compares
        nested models by the penalised likelihood ratio at b_j = 0 instead (see clinical.py)."""
        ll = self.pllf if self.method == "firth" else self.llf
        return 2.0 * len(self.params) - 2.0 * ll

    def conf_int(self, alpha: float = 0.05, method: str = "wald") -> np.ndarray:
        """Wald CIs, or (Firth fits) ``method="profile"``: profile penalised-likelihood CIs."""
        from scipy import stats

        if method == "profile":
            if self.method != "firth":
                raise ValueError("profile penalised-likelihood CIs need a Firth fit")
            return np.array([firth_profile_ci(self, j, alpha) for j in range(len(self.params))])
        z = stats.norm.ppf(1 - alpha / 2)
        return np.column_stack([self.params - z * self.bse, self.params + z * self.bse])

    @property
    def pvalues(self) -> np.ndarray:
        """Wald p-values (ML); penalised likelihood-ratio p-values for Firth fits (as logistf)."""
        from scipy import stats

        if self.method == "firth":
            out = np.empty(len(self.params))
            for j in range(len(self.params)):
                restricted = _firth_constrained(self.X, self.y, j, 0.0, self.params)
                chi2 = max(0.0, 2.0 * (self.pllf - restricted))
                out[j] = stats.chi2.sf(chi2, 1)
            return out
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


# ------------------------------------------------------------------------------------ Firth
def _design(X: np.ndarray, n: int, add_intercept: bool) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[1] == 0 and not add_intercept:
        raise ValueError("empty design")
    return np.column_stack([np.ones(n), X]) if add_intercept else X


def penalised_loglik(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> float:
    """Firth's penalised log-likelihood l(b) + 0.5 log|X'W(b)X| (X includes the intercept column)."""
    eta = X @ beta
    p = sigmoid(eta)
    w = p * (1 - p)
    sign, logdet = np.linalg.slogdet((X * w[:, None]).T @ X)
    if sign <= 0:
        return -np.inf
    return _loglik(y, eta) + 0.5 * logdet


def _firth_newton(X, y, beta, free, max_iter=200, tol=1e-10):
    """Maximise l* over the coordinates ``free`` (the others stay at ``beta``) by Newton-Raphson with
    Firth's modified score U*_k = sum_i (y_i - p_i + h_i (1/2 - p_i)) x_ik and the expected information
    as the curvature, with step halving on l*.  Converged when max |U*_free| < tol * max(1, n).
    Returns (beta, l*, n_iter, converged)."""
    beta = beta.astype(float).copy()
    pl = penalised_loglik(X, y, beta)
    gtol = tol * max(1.0, len(y))
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (returned)
        p = sigmoid(X @ beta)
        w = p * (1 - p)
        info = (X * w[:, None]).T @ X
        try:
            cov = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            cov = np.linalg.pinv(info)
        h = np.einsum("ij,jk,ik->i", X, cov, X) * w  # diagonal of the hat matrix W^1/2 X I^-1 X' W^1/2
        score = (X.T @ (y - p + h * (0.5 - p)))[free]
        if np.max(np.abs(score)) < gtol:
            converged = True
            break
        sub = info[np.ix_(free, free)]
        try:
            step = np.linalg.solve(sub, score)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(sub, score, rcond=None)[0]
        # cap very long steps (far from the optimum the quadratic model is poor), then halve until
        # the penalised likelihood does not drop
        mx = np.max(np.abs(step))
        if mx > 5.0:
            step = step * (5.0 / mx)
        for _ in range(50):
            cand = beta.copy()
            cand[free] += step
            pl_new = penalised_loglik(X, y, cand)
            if pl_new >= pl - 1e-12:
                break
            step = step / 2
        else:
            break  # no ascent direction left at machine precision
        beta, pl = cand, pl_new
    return beta, pl, it, converged


def fit_firth(X: np.ndarray, y: np.ndarray, *, add_intercept: bool = True, max_iter: int = 200,
              tol: float = 1e-10) -> LogitFit:
    """Firth's bias-reduced logistic regression (Newton-Raphson on the modified score).

    ``llf`` is the ordinary log-likelihood at the Firth estimate, ``pllf`` the penalised one; ``bse``
    are Wald standard errors from the inverse information at the estimate.  Use
    ``conf_int(method="profile")`` for profile penalised-likelihood CIs."""
    y = np.asarray(y, dtype=float).ravel()
    X = _design(X, len(y), add_intercept)
    beta, pl, it, conv = _firth_newton(X, y, np.zeros(X.shape[1]), np.arange(X.shape[1]),
                                       max_iter=max_iter, tol=tol)
    p = sigmoid(X @ beta)
    info = (X * (p * (1 - p))[:, None]).T @ X
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(info)
    bse = np.sqrt(np.clip(np.diag(cov), 0, None))
    return LogitFit(params=beta, bse=bse, llf=float(_loglik(y, X @ beta)), n_iter=it, converged=conv,
                    method="firth", pllf=float(pl), X=X, y=y)


def _firth_constrained(X, y, j, value, start) -> float:
    """max over b_-j of l*(b) with b_j fixed at ``value`` (the penalty keeps the full information)."""
    b0 = np.asarray(start, dtype=float).copy()
    b0[j] = value
    free = np.array([k for k in range(X.shape[1]) if k != j], dtype=int)
    if free.size == 0:
        return penalised_loglik(X, y, b0)
    return _firth_newton(X, y, b0, free)[1]


def firth_profile_ci(fit: LogitFit, j: int, alpha: float = 0.05) -> tuple[float, float]:
    """Profile penalised-likelihood CI for coefficient ``j`` of a Firth fit (Heinze & Schemper 2002):
    the b_j where 2 [l*(b_hat) - max_{b_-j} l*] crosses the chi2_1 (1 - alpha) quantile, found by
    bracketing and Brent's method.  An end that does not cross within |b_j - b_hat| <= 50 is +-inf."""
    from scipy import optimize, stats

    crit = stats.chi2.ppf(1 - alpha, 1)
    bj = float(fit.params[j])

    def g(v):
        return 2.0 * (fit.pllf - _firth_constrained(fit.X, fit.y, j, v, fit.params)) - crit

    se = fit.bse[j] if np.isfinite(fit.bse[j]) and fit.bse[j] > 0 else 1.0
    ends = []
    for sign in (-1.0, 1.0):
        lo, d = bj, max(se, 1e-3)
        end = np.inf * sign
        while abs(lo - bj) < 50.0:
            hi = bj + sign * d
            if g(hi) > 0:
                end = optimize.brentq(g, min(lo, hi), max(lo, hi), xtol=1e-10, rtol=1e-12)
                break
            lo, d = hi, d * 2
        ends.append(end)
    return ends[0], ends[1]


# ------------------------------------------------------------------------------- separation
def separation_check(X: np.ndarray, y: np.ndarray, *, add_intercept: bool = True,
                     names: list[str] | None = None) -> dict:
    """Is the ML estimate infinite?  Exact linear-programming test (Konis 2007, as in the R package
    detectseparation): with s_i = 2 y_i - 1, maximise sum_i s_i x_i'b subject to s_i x_i'b >= 0 and
    -1 <= b <= 1.  A positive optimum is a direction along which the likelihood rises for ever, i.e.
    complete or quasi-complete separation; the variables with non-zero b in it are reported (one
    separating direction, not necessarily the only one)."""
    from scipy.optimize import linprog

    y = np.asarray(y, dtype=float).ravel()
    A = _design(X, len(y), add_intercept)
    scale = np.max(np.abs(A), axis=0)
    scale[scale == 0] = 1.0
    As = (A / scale) * (2 * y - 1)[:, None]
    res = linprog(-As.sum(axis=0), A_ub=-As, b_ub=np.zeros(len(y)), bounds=[(-1, 1)] * A.shape[1],
                  method="highs")
    value = float(-res.fun) if res.status == 0 else 0.0
    separated = value > 1e-7 * len(y)
    involved: list[str] = []
    if separated:
        b = res.x
        cols = names if names is not None else [f"x{k}" for k in range(A.shape[1] - add_intercept)]
        involved = [c for c, v in zip(cols, b[1:] if add_intercept else b) if abs(v) > 1e-6]
    return {"separated": bool(separated), "lp_value": value, "variables": involved}
