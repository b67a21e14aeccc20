"""Calibration slope/intercept and the Newton-Raphson logistic fit against statsmodels GLM."""

import numpy as np
import pytest

sm = pytest.importorskip("statsmodels.api")

from NACResponseLib.modelling.calibration import calibration_slope_intercept, decile_table  # noqa: E402
from NACResponseLib.modelling.logit import fit_logit, logit  # noqa: E402


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    n = 300
    true_lp = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_lp))).astype(int)
    p = 1 / (1 + np.exp(-(0.3 + 1.6 * true_lp)))  # a miscalibrated model: too extreme, shifted
    return y, p


def test_slope_matches_statsmodels_glm(data):
    y, p = data
    res = sm.GLM(y, sm.add_constant(logit(p)), family=sm.families.Binomial()).fit()
    ours = calibration_slope_intercept(y, p)
    assert ours["slope"] == pytest.approx(res.params[1], rel=1e-7)
    ci = res.conf_int()[1]
    assert (ours["slope_ci_low"], ours["slope_ci_high"]) == pytest.approx(tuple(ci), abs=1e-6)
    assert ours["slope"] < 1  # the model is too extreme


def test_intercept_with_offset_matches_statsmodels_glm(data):
    y, p = data
    res = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=logit(p)).fit()
    ours = calibration_slope_intercept(y, p)
    assert ours["intercept"] == pytest.approx(res.params[0], rel=1e-7)
    ci = res.conf_int()[0]
    assert (ours["intercept_ci_low"], ours["intercept_ci_high"]) == pytest.approx(tuple(ci), abs=1e-6)
    assert ours["brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_logit_fit_matches_statsmodels_logit():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 3))
    y = (rng.random(200) < 1 / (1 + np.exp(-(0.5 + X @ [1.0, -0.5, 0.0])))).astype(int)
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0)
    ours = fit_logit(X, y)
    assert ours.converged
    np.testing.assert_allclose(ours.params, ref.params, rtol=1e-7)
    np.testing.assert_allclose(ours.bse, ref.bse, rtol=1e-6)
    assert ours.aic == pytest.approx(ref.aic, rel=1e-9)
    np.testing.assert_allclose(ours.conf_int(), ref.conf_int(), rtol=1e-6)


def test_perfectly_calibrated_predictions_have_slope_near_one():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < p).astype(int)
    c = calibration_slope_intercept(y, p)
    assert c["slope_ci_low"] < 1 < c["slope_ci_high"]
    assert c["intercept_ci_low"] < 0 < c["intercept_ci_high"]


def test_decile_table_counts(data):
    y, p = data
    t = decile_table(y, p)
    assert len(t) == 10 and t["n"].sum() == len(y) and t["events"].sum() == y.sum()
    assert np.all(np.diff(t["mean_predicted"]) > 0)
    first = np.sort(p)[:30]
    assert t["mean_predicted"].iloc[0] == pytest.approx(first.mean())
