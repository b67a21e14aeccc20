"""Bootstrap CIs, operating points, Harrell optimism, stepwise flags and RCB regression."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from NACResponseLib.modelling.evaluation import (
    bootstrap_metrics,
    confusion_metrics,
    events_per_variable,
    harrell_optimism,
    permutation_test,
    roc_auc,
    stratified_bootstrap_indices,
    weighted_youden,
)
from NACResponseLib.modelling.stepwise import flag_table, run_stepwise
from NACResponseLib.modelling.targets import class_balance, make_target


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(30), np.zeros(50)].astype(int)
    p = 1 / (1 + np.exp(-(1.2 * y + rng.normal(0, 1, 80))))
    return y, p


def test_auc_matches_sklearn(scores):
    y, p = scores
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), rel=1e-12)


def test_confusion_metrics_match_sklearn(scores):
    y, p = scores
    tn, fp, fn, tp = confusion_matrix(y, (p >= 0.5).astype(int)).ravel()
    m = confusion_metrics(y, p, 0.5)
    assert m["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["ppv"] == pytest.approx(tp / (tp + fp)) and m["npv"] == pytest.approx(tn / (tn + fn))
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_bootstrap_is_stratified_seeded_and_matches_resample_aucs(scores):
    y, p = scores
    idx = stratified_bootstrap_indices(y, 50, np.random.default_rng(1))
    assert (y[idx].sum(axis=1) == y.sum()).all()
    a = bootstrap_metrics(y, p, 0.5, n_boot=300, seed=42)
    b = bootstrap_metrics(y, p, 0.5, n_boot=300, seed=42)
    c = bootstrap_metrics(y, p, 0.5, n_boot=300, seed=43)
    assert a == b and a["seed"] == 42 and a["auc"] != c["auc"]
    # the CI equals percentiles of AUCs computed independently (sklearn) on the same resamples
    idx = stratified_bootstrap_indices(y, 300, np.random.default_rng(42))
    ref = [roc_auc_score(y[i], p[i]) for i in idx]
    assert a["auc"]["ci_low"] == pytest.approx(np.quantile(ref, 0.025), rel=1e-12)
    assert a["auc"]["ci_high"] == pytest.approx(np.quantile(ref, 0.975), rel=1e-12)
    for k in ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"):
        assert a[k]["ci_low"] <= a[k]["estimate"] <= a[k]["ci_high"]


@pytest.mark.parametrize("w", [0.2, 0.5, 0.8])
def test_weighted_youden_matches_roc_curve_search(scores, w):
    y, p = scores
    fpr, tpr, thr = roc_curve(y, p)
    j = 2 * (w * tpr + (1 - w) * (1 - fpr)) - 1  # the standard weighted Youden index
    op = weighted_youden(y, p, w)
    assert op["j"] == pytest.approx(j.max(), abs=1e-12)


def test_youden_weight_moves_threshold(scores):
    y, p = scores
    early, late = weighted_youden(y, p, 0.8), weighted_youden(y, p, 0.2)
    assert early["threshold"] <= late["threshold"] and early["sensitivity"] >= late["sensitivity"]


class _CentroidScore:
    """A cheap classifier that overfits noise: score = projection on the class-mean difference."""

    def fit(self, X, y):
        self.w = X[y == 1].mean(axis=0) - X[y == 0].mean(axis=0)
        return self

    def predict_proba(self, X):
        s = 1 / (1 + np.exp(-X @ self.w))
        return np.column_stack([1 - s, s])


def test_harrell_optimism_corrects_an_overfitted_model():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 40))
    y = np.repeat([0, 1], 30)
    res = harrell_optimism(_CentroidScore, X, y, n_boot=200, seed=1)
    again = harrell_optimism(_CentroidScore, X, y, n_boot=200, seed=1)
    assert res == again and res["n_boot"] == 200
    assert res["apparent_auc"] > 0.85  # pure noise looks predictive in-sample
    # fresh data from the same (null) distribution: true AUC 0.5; the correction moves towards it
    Xn = rng.normal(size=(2000, 40))
    yn = rng.integers(0, 2, 2000)
    true_auc = roc_auc(yn, _CentroidScore().fit(X, y).predict_proba(Xn)[:, 1])
    assert abs(res["corrected_auc"] - true_auc) < abs(res["apparent_auc"] - true_auc) - 0.15


def test_permutation_test_p_value():
    y = np.repeat([0, 1], 10)
    res = permutation_test(lambda lab: roc_auc(lab, np.arange(20.0)), y, n_permutations=30, seed=0)
    assert res["observed_auc"] == 1.0 and res["p"] == pytest.approx(1 / 31)
    assert abs(res["permuted_auc_mean"] - 0.5) < 0.15


def test_events_per_variable():
    assert events_per_variable([1, 1, 0, 0, 0, 0], 2) == 1.0


def test_stepwise_flags_by_hand():
    y = np.array([1, 1, 0, 0, 0, 1])
    probs = {"c2": np.array([0.9, 0.2, 0.1, 0.6, 0.7, 0.8]), "c4": np.array([0.9, 0.3, 0.1, 0.2, 0.9, 0.85])}
    res = run_stepwise(y, probs, {"c2": 0.8, "c4": 0.2})
    flags = res["flags"]["flagged_at"].tolist()
    t2, t4 = res["operating_points"]["c2"]["threshold"], res["operating_points"]["c4"]["threshold"]
    assert res["operating_points"]["c2"]["weight"] == 0.8
    expect = []
    for i in range(6):
        expect.append("c2" if probs["c2"][i] < t2 else ("c4" if probs["c4"][i] < t4 else "not flagged"))
    assert flags == expect
    table = flag_table(y, res["flags"])
    assert table["flagged"].iloc[:2].sum() + table["evaluated"].iloc[-1] == 6


def test_targets_and_balance():
    f = pd.DataFrame({"pcr": [1, 0, None], "miller_payne": [5, 3, 4], "rcb_index": [0.0, 2.5, 1.2],
                      "rcb_class": [None, None, None]})
    assert make_target(f, "miller_payne").tolist() == [1.0, 0.0, 1.0]
    assert make_target(f, "rcb_class").tolist() == [1.0, 0.0, 1.0]
    assert class_balance(make_target(f, "pcr")) == {"n": 2, "positive": 1, "negative": 1, "prevalence": 0.5}
    f2 = f.assign(rcb_class=["0", "III", "II"])
    assert make_target(f2, "rcb_class").tolist() == [1.0, 0.0, 0.0]


@pytest.mark.slow
def test_rcb_regression_lima_metrics():
    from NACResponseLib.modelling.rcb import rcb_regression
    from NACResponseLib.modelling.selection import SelectionConfig

    rng = np.random.default_rng(2)
    n = 60
    X = pd.DataFrame(rng.normal(size=(n, 10)), columns=[f"pre__adc__f{i}" for i in range(10)])
    rcb = np.clip(1.5 + 1.2 * X["pre__adc__f0"] + rng.normal(0, 0.5, n), 0, None)
    pcr = (rcb == 0).astype(int) | (rcb < 0.3)
    res = rcb_regression(X, rcb, pcr, selection=SelectionConfig(lasso_cv=5, lasso_lambdas=8), n_boot=200)
    from scipy.stats import spearmanr
    assert res["spearman_rho"] == pytest.approx(spearmanr(res["predictions"], rcb).statistic)
    assert res["spearman_rho"] > 0.5
    assert res["auc_rcb01_vs_23"]["estimate"] > 0.75
    assert "pre__adc__f0" in res["selection"]["features"]
