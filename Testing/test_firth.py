"""Firth's bias-reduced logistic regression (Firth 1993; Heinze & Schemper 2002) for separated data.

References used, all independent of the Newton-Raphson code in modelling/logit.py:
- a direct maximisation of the penalised log-likelihood l(b) + 0.5 log|X'WX| with scipy.optimize
  (BFGS, gradient by complex-step differentiation of the objective written out below);
- the closed form for one binary covariate: Firth's estimate is the ML estimate after adding 1/2 to
  every cell of the 2x2 table;
- a profile penalised-likelihood CI computed by scipy (inner BFGS, outer brentq);
- statsmodels for the plain ML path on non-separated data.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from NACResponseLib.modelling.clinical import BackwardStepwiseLogit
from NACResponseLib.modelling.logit import fit_firth, fit_logit, separation_check


# ------------------------------------------------------------------ independent reference
def _ref_penalised_loglik(b, X, y):
    """l(b) + 0.5 log det(X' diag(p(1-p)) X), written for complex b (complex-step derivatives)."""
    eta = X @ b
    p = 1.0 / (1.0 + np.exp(-eta))
    ll = np.sum(y * eta - np.log(1.0 + np.exp(eta)))
    info = X.T @ (X * (p * (1 - p))[:, None])
    return ll + 0.5 * np.log(np.linalg.det(info))


def _ref_grad(b, X, y, h=1e-30):
    g = np.empty(len(b))
    for k in range(len(b)):
        bc = b.astype(complex)
        bc[k] += 1j * h
        g[k] = _ref_penalised_loglik(bc, X, y).imag / h
    return g


def _ref_firth(X, y, b0=None, fixed=None):
    """Maximise the penalised log-likelihood with scipy; ``fixed=(j, v)`` holds b_j = v."""
    k = X.shape[1]
    free = [i for i in range(k) if fixed is None or i != fixed[0]]

    def full(bf):
        b = np.zeros(k)
        b[free] = bf
        if fixed is not None:
            b[fixed[0]] = fixed[1]
        return b

    start = np.zeros(len(free)) if b0 is None else np.asarray(b0, float)[free]
    res = optimize.minimize(lambda bf: -_ref_penalised_loglik(full(bf), X, y).real, start,
                            jac=lambda bf: -_ref_grad(full(bf), X, y)[free], method="BFGS",
                            options={"gtol": 1e-11, "maxiter": 2000})
    return full(res.x), -res.fun


def _design(x):
    x = np.asarray(x, float)
    return np.column_stack([np.ones(len(x)), x if x.ndim == 2 else x[:, None]])


def _small_data(seed=3, n=30):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n).astype(float)])
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + 0.8 * X[:, 0] - 0.7 * X[:, 1])))).astype(float)
    return X, y


def _separated_data():
    """Quasi-complete separation: every patient with g = 1 responded; x is an ordinary covariate."""
    rng = np.random.default_rng(11)
    n = 40
    g = np.r_[np.ones(8), np.zeros(n - 8)]
    x = rng.normal(size=n)
    y = np.r_[np.ones(8), (rng.random(n - 8) < 1 / (1 + np.exp(-(-1.0 + 0.9 * x[8:])))).astype(float)]
    return np.column_stack([g, x]), y


# ------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("data", ["plain", "separated"])
def test_firth_newton_raphson_matches_direct_maximisation(data):
    X, y = _small_data() if data == "plain" else _separated_data()
    fit = fit_firth(X, y)
    assert fit.converged and fit.method == "firth"
    ref_b, ref_pl = _ref_firth(_design(X), y)
    np.testing.assert_allclose(fit.params, ref_b, atol=1e-6)
    assert fit.pllf == pytest.approx(ref_pl, abs=1e-9)
    assert fit.aic == pytest.approx(2 * 3 - 2 * ref_pl, abs=1e-8)


def test_firth_one_binary_covariate_adds_half_to_each_cell():
    a, b, c, d = 10, 0, 4, 8  # exposed: 10 events / 0 non-events; unexposed: 4 / 8 (separated)
    x = np.r_[np.ones(a + b), np.zeros(c + d)]
    y = np.r_[np.ones(a), np.zeros(b), np.ones(c), np.zeros(d)]
    fit = fit_firth(x, y)
    expected_log_or = np.log((a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5)))
    expected_intercept = np.log((c + 0.5) / (d + 0.5))
    np.testing.assert_allclose(fit.params, [expected_intercept, expected_log_or], atol=1e-8)


def test_profile_penalised_likelihood_ci_matches_independent_profile():
    X, y = _separated_data()
    fit = fit_firth(X, y)
    ci = fit.conf_int(0.05, method="profile")
    D = _design(X)
    crit = stats.chi2.ppf(0.95, 1)
    for j in (1, 2):  # the separated indicator and the ordinary covariate
        def g(v, j=j):
            return 2 * (fit.pllf - _ref_firth(D, y, b0=fit.params, fixed=(j, v))[1]) - crit
        lo = optimize.brentq(g, fit.params[j] - 10, fit.params[j], xtol=1e-10)
        hi = optimize.brentq(g, fit.params[j], fit.params[j] + 20, xtol=1e-10)
        np.testing.assert_allclose(ci[j], [lo, hi], atol=1e-5)
        assert np.all(np.isfinite(ci[j]))
    # penalised likelihood-ratio p-value of the indicator, by the same reference
    chi2 = 2 * (fit.pllf - _ref_firth(D, y, b0=fit.params, fixed=(1, 0.0))[1])
    assert fit.pvalues[1] == pytest.approx(stats.chi2.sf(chi2, 1), rel=1e-5)


def test_separation_is_detected_and_ml_diverges_while_firth_stays_finite():
    X, y = _separated_data()
    sep = separation_check(X, y, names=["g", "x"])
    assert sep["separated"] and sep["variables"] == ["g"]
    assert not separation_check(*_small_data())["separated"]
    # ML: the indicator's coefficient keeps growing with the iteration budget (no finite MLE)
    b_short = fit_logit(X, y, max_iter=5).params[1]
    b_long = fit_logit(X, y, max_iter=100).params[1]
    assert b_long > b_short + 5 and b_long > 15
    firth = fit_firth(X, y)
    assert firth.converged and np.all(np.isfinite(firth.params)) and 0 < firth.params[1] < 6
    assert np.all(np.isfinite(firth.conf_int(method="profile")))


def _clinical_frame(separated: bool, n=40, seed=5):
    rng = np.random.default_rng(seed)
    subtype = np.array(["HR+/HER2-"] * 16 + ["HR-/HER2+"] * 8 + ["HR+/HER2+"] * 8 + ["TN"] * 8)
    age = rng.normal(50, 10, n)
    size = rng.normal(30, 8, n)
    lp = -1.2 + 0.04 * (30 - size) + np.where(subtype == "TN", 1.0, 0.0) + np.where(subtype == "HR-/HER2+", 1.5, 0)
    y = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int)
    if separated:
        y[subtype == "HR-/HER2+"] = 1
    else:
        y[np.flatnonzero(subtype == "HR-/HER2+")[:2]] = [0, 1]
        y[np.flatnonzero(subtype == "TN")[:2]] = [0, 1]
    X = pd.DataFrame({"age": age, "size_mm": size})
    for lv in ("HR+/HER2+", "HR-/HER2+", "TN"):
        X[f"subtype={lv}"] = (subtype == lv).astype(float)
    return X, y


def test_stepwise_switches_to_firth_on_separated_subtype():
    X, y = _clinical_frame(separated=True)
    m = BackwardStepwiseLogit().fit(X, y)
    assert m.estimator_ == "firth" and m.separation_["detected"]
    assert "subtype=HR-/HER2+" in m.separation_["variables"]
    assert m.ci_method_ == "profile penalised likelihood"
    t = m.odds_ratios_
    assert np.all(np.isfinite(t[["odds_ratio", "or_ci_low", "or_ci_high"]].to_numpy()))
    assert np.all(t["or_ci_low"] < t["odds_ratio"]) and np.all(t["odds_ratio"] < t["or_ci_high"])
    # the AIC of the selected model is 2k - 2 l* of the penalised likelihood, by the reference
    _, ref_pl = _ref_firth(_design(X[m.selected_].to_numpy()), y.astype(float))
    assert m.aic_ == pytest.approx(2 * (len(m.selected_) + 1) - 2 * ref_pl, abs=1e-7)
    # each removal lowered the AIC: Delta AIC = 2 - PLR chi2 < 0, where the PLR compares the model
    # before the removal with itself at b_j = 0 (same penalty; by the reference optimiser)
    cols = list(X.columns)
    for h in m.history_[1:]:
        assert h["delta_aic"] < 0
    # ... and removing any survivor would raise it (PLR chi2 >= 2)
    D = _design(X[m.selected_].to_numpy())
    _, full_pl = _ref_firth(D, y.astype(float))
    for j, v in enumerate(m.selected_, start=1):
        _, restricted = _ref_firth(D, y.astype(float), fixed=(j, 0.0))
        assert 2 * (full_pl - restricted) >= 2 - 1e-9, v
    # the selection does not depend on covariate units (the nested PLR is invariant to rescaling)
    X2 = X.assign(size_mm=X["size_mm"] / 1000.0, age=X["age"] * 12)
    m2 = BackwardStepwiseLogit().fit(X2, y)
    assert m2.selected_ == m.selected_ and len(m.history_) == len(m2.history_) > 1
    assert set(cols) - set(m.selected_)
    # forcing ML reproduces the problem the demo showed
    ml = BackwardStepwiseLogit(firth="never").fit(X, y)
    assert ml.estimator_ == "ml"
    if "subtype=HR-/HER2+" in ml.selected_:
        row = ml.odds_ratios_.set_index("variable").loc["subtype=HR-/HER2+"]
        assert row["odds_ratio"] > 1e5


def test_stepwise_without_separation_keeps_ml_and_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    X, y = _clinical_frame(separated=False)
    m = BackwardStepwiseLogit().fit(X, y)
    assert m.estimator_ == "ml" and not m.separation_["detected"] and m.ci_method_ == "wald"
    ref = sm.Logit(y, sm.add_constant(X[m.selected_], has_constant="add")).fit(disp=0)
    assert m.aic_ == pytest.approx(ref.aic, rel=1e-8)
    np.testing.assert_allclose(m.odds_ratios_["odds_ratio"], np.exp(ref.params), rtol=1e-6)
    np.testing.assert_allclose(m.odds_ratios_[["or_ci_low", "or_ci_high"]], np.exp(ref.conf_int()), rtol=1e-5)
    # firth="always" is available on request and uses the penalised likelihood throughout
    assert BackwardStepwiseLogit(firth="always").fit(X, y).estimator_ == "firth"
