"""Honest evaluation when features outnumber patients: the .632+ bootstrap AUC (re-derived from
Efron & Tibshirani's formula by hand), Harrell's correction withheld where it fails, the standard
weighted Youden index (by hand), thresholds chosen inside each training fold, tuning inside the
bootstrap refits, and Hosmer-Lemeshow (re-derived with pandas' quantile groups and scipy's chi2)."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2
from sklearn.metrics import roc_auc_score

from NACResponseLib.modelling import workflow
from NACResponseLib.modelling.calibration import hosmer_lemeshow
from NACResponseLib.modelling.evaluation import auc_632_plus, bootstrap_validation, weighted_youden
from NACResponseLib.modelling.pipeline import ModelSpec, cross_validated_predictions
from NACResponseLib.modelling.selection import SelectionConfig, UnivariateFilter

FAST = SelectionConfig(lasso_cv=3, lasso_lambdas=6)
PLAIN = SelectionConfig(lasso=False, univariate_alpha=1.0, spearman_threshold=1.0)  # cheap: logistic on all


# ------------------------------------------------------------------------------------ .632+
def test_632_plus_by_hand():
    """Apparent AUC 0.95, mean out-of-bag AUC 0.60.  On the error scale: err = 0.05, Err1 = 0.40,
    gamma = 0.5; R = (0.40 - 0.05) / (0.5 - 0.05) = 7/9; w = 0.632 / (1 - 0.368 * 7/9) = 0.885430;
    Err.632+ = (1 - w) 0.05 + w 0.40 = 0.359900; AUC = 0.640100"""
    r = 0.35 / 0.45
    w = 0.632 / (1 - 0.368 * r)
    res = auc_632_plus(0.95, 0.60)
    assert res["relative_overfitting"] == pytest.approx(7 / 9, rel=1e-12)
    assert res["weight"] == pytest.approx(w, rel=1e-12) and w == pytest.approx(0.8854296, abs=1e-7)
    assert res["auc"] == pytest.approx(1 - ((1 - w) * 0.05 + w * 0.40), rel=1e-12)
    assert res["auc"] == pytest.approx(0.6400996, abs=1e-6)
    assert res["auc_632"] == pytest.approx(0.368 * 0.95 + 0.632 * 0.60, rel=1e-12)


def test_632_plus_limits():
    # no overfitting (out-of-bag as good as apparent): R = 0, the plain .632 estimate
    assert auc_632_plus(0.8, 0.85)["auc"] == pytest.approx(0.368 * 0.8 + 0.632 * 0.85)
    # out-of-bag at or below chance: Err1' = gamma, R = 1, w = 1, AUC = 0.5 exactly
    for oob in (0.5, 0.4):
        res = auc_632_plus(1.0, oob)
        assert res["relative_overfitting"] == 1.0 and res["weight"] == pytest.approx(1.0)
        assert res["auc"] == pytest.approx(0.5)


class _Centroid:
    """A cheap, overfitting score: projection on the class-mean difference."""

    def fit(self, X, y):
        self.w = X[y == 1].mean(axis=0) - X[y == 0].mean(axis=0)
        return self

    def predict_proba(self, X):
        s = 1 / (1 + np.exp(-X @ self.w))
        return np.column_stack([1 - s, s])


def test_bootstrap_validation_re_derived_with_sklearn_aucs():
    """The same resamples, redrawn independently, scored with sklearn's AUC and combined by the
    formula written out here."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 30))
    y = np.repeat([0, 1], 20)
    res = bootstrap_validation(_Centroid, X, y, n_boot=15, seed=7)
    draw = np.random.default_rng(7)
    opt, oob = [], []
    while len(opt) < 15:
        i = draw.integers(0, 40, 40)
        out = np.setdiff1d(np.arange(40), i)
        if len(set(y[i])) < 2 or len(out) == 0 or len(set(y[out])) < 2:
            continue
        m = _Centroid().fit(X[i], y[i])
        p = m.predict_proba(X)[:, 1]
        opt.append(roc_auc_score(y[i], m.predict_proba(X[i])[:, 1]) - roc_auc_score(y, p))
        oob.append(roc_auc_score(y[out], p[out]))
    app = roc_auc_score(y, _Centroid().fit(X, y).predict_proba(X)[:, 1])
    assert res["apparent_auc"] == pytest.approx(app, rel=1e-12)
    assert res["harrell"]["corrected_auc"] == pytest.approx(app - np.mean(opt), rel=1e-12)
    err, err1 = 1 - app, min(1 - np.mean(oob), 0.5)
    r = min(1.0, max(0.0, (err1 - err) / (0.5 - err))) if err1 > err else 0.0
    w = 0.632 / (1 - 0.368 * r)
    assert res["auc_632plus"]["auc"] == pytest.approx(1 - ((1 - w) * err + w * err1), rel=1e-12)


def _noise(n=120, p=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"pre__t2w__original_firstorder_F{i}" for i in range(p)])
    return X, np.repeat([0, 1], n // 2)


@pytest.mark.slow
def test_632_plus_is_near_chance_on_noise_where_harrell_is_not_and_a_leak_is_caught():
    """120 patients x 2000 noise features through the full pipeline: .632+ ~ 0.5 while Harrell's
    correction stays far above chance (so it is withheld); the leaky control (features chosen on
    all patients before the bootstrap) scores high, so the check can fail."""
    X, y = _noise()
    settings = workflow.EvaluationSettings(optimism_boot=30, seed=1)
    honest = workflow.validate_by_bootstrap(ModelSpec("radiomics", selection=FAST), X, y, settings)
    assert abs(honest["auc_632plus"] - 0.5) < 0.06
    assert not honest["harrell_valid"] and honest["harrell_auc"] is None and "withheld" in honest["note"]
    assert honest["details_harrell"]["corrected_auc"] > honest["auc_632plus"] + 0.15
    leaked = UnivariateFilter(alpha=0.05).fit(X, y).get_feature_names_out().tolist()
    leaky = workflow.validate_by_bootstrap(
        ModelSpec("radiomics", selection=SelectionConfig(univariate_alpha=1.0, spearman_threshold=1.0, lasso=False)),
        X[leaked], y, settings)
    assert leaky["auc_632plus"] > 0.75


def test_harrell_is_shown_where_events_per_variable_suffice():
    rng = np.random.default_rng(2)
    n = 200
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=[f"pre__t2w__original_firstorder_F{i}" for i in range(3)])
    y = (X.iloc[:, 0] + rng.normal(0, 1, n) > 0).astype(int).to_numpy()
    settings = workflow.EvaluationSettings(optimism_boot=5, seed=0)
    spec = ModelSpec("radiomics", selection=SelectionConfig(lasso=False, univariate_alpha=1.0))
    res = workflow.validate_by_bootstrap(spec, X, y, settings)
    assert res["harrell_valid"] and res["harrell_auc"] == res["details_harrell"]["corrected_auc"]
    assert "shown" in res["note"]


def test_tuning_is_repeated_inside_every_bootstrap_refit(monkeypatch):
    calls = []
    real = workflow.fit_model

    def spy(spec, X, y, **kw):
        calls.append(kw.get("tune"))
        return real(spec, X, y, **kw)

    monkeypatch.setattr(workflow, "fit_model", spy)
    X, y = _noise(40, 6, 4)
    settings = workflow.EvaluationSettings(optimism_boot=3, tune=True, seed=0)
    res = workflow.validate_by_bootstrap(ModelSpec("radiomics", selection=PLAIN), X, y, settings)
    assert calls == [True] * 4 and res["tuned_in_refits"]  # the apparent fit and 3 refits


# ------------------------------------------------------------------------------------ Youden
def test_weighted_youden_by_hand():
    """y = 1 1 0 0 0, p = .9 .4 .6 .2 .1.  With w = 0.5, J = Se + Sp - 1 per threshold (p >= t):
    t=.1: 1+0-1 = 0; .2: 1+1/3-1; .4: 1+2/3-1 = 2/3; .6: 1/2+2/3-1 = 1/6; .9: 1/2+1-1 = 1/2;
    +inf (nobody positive): 0+1-1 = 0.  Best: t = .4, J = 2/3.
    With w = 0.1, J_w = 2 (0.1 Se + 0.9 Sp) - 1: t=.4: 0.4; t=.9: 0.9; +inf: 0.8.  Best: t = .9."""
    y = [1, 1, 0, 0, 0]
    p = [0.9, 0.4, 0.6, 0.2, 0.1]
    op = weighted_youden(y, p, 0.5)
    assert op["threshold"] == 0.4 and op["j"] == pytest.approx(2 / 3, abs=1e-12)
    assert (op["sensitivity"], op["specificity"]) == (1.0, pytest.approx(2 / 3))
    op = weighted_youden(y, p, 0.1)
    assert op["threshold"] == 0.9 and op["j"] == pytest.approx(0.9, abs=1e-12)


def test_calling_nobody_positive_is_a_candidate():
    """y = 1 0 0 0, p = .2 .9 .5 .1, w = 0.2: J_w at t = .1, .2, .5, .9 is -0.6, -1/15, 1/15,
    -7/15; calling nobody positive (Se 0, Sp 1) gives 2 * 0.8 - 1 = 0.6, the best."""
    op = weighted_youden([1, 0, 0, 0], [0.2, 0.9, 0.5, 0.1], 0.2)
    assert op["threshold"] == np.inf and op["j"] == pytest.approx(0.6, abs=1e-12)
    assert (op["sensitivity"], op["specificity"]) == (0.0, 1.0)


# ------------------------------------------------------------------------------------ fold thresholds
def test_each_case_is_called_with_the_threshold_its_training_fold_chose():
    """Re-derived fold by fold with sklearn's StratifiedKFold: the threshold applied to a
    validation fold is the one chosen from its training rows alone."""
    from sklearn.model_selection import StratifiedKFold

    from NACResponseLib.modelling.pipeline import fold_threshold

    X, y = _noise(40, 6, 5)
    spec = ModelSpec("radiomics", selection=PLAIN)
    cv = cross_validated_predictions(spec, X, y, n_splits=4, seed=3, youden_weights={"youden": 0.5, "early": 0.8})
    c = cv["called"]["youden"]
    np.testing.assert_array_equal(c, (cv["oof"] >= cv["case_thresholds"]["youden"]).astype(float))
    splits = StratifiedKFold(4, shuffle=True, random_state=3).split(np.zeros(40), y)
    for k, (train, test) in enumerate(splits):
        ref = fold_threshold(spec, X.iloc[train], y[train], {"youden": 0.5, "early": 0.8}, seed=3)
        assert ref["source"] == "inner CV" and cv["fold_thresholds"][k] == ref
        assert np.all(cv["case_thresholds"]["early"][test] == ref["thresholds"]["early"])


@pytest.mark.slow
def test_thresholds_chosen_inside_folds_do_not_flatter_noise():
    """On noise, a Youden threshold chosen on the out-of-fold predictions it is scored on shows
    Se + Sp - 1 above 0 (it is a maximum over thresholds, never below the 0 of calling nobody
    positive); thresholds chosen inside each training fold centre on 0."""
    same, fold = [], []
    for seed in range(4):
        X, y = _noise(60, 10, seed)
        cv = cross_validated_predictions(ModelSpec("radiomics", selection=PLAIN), X, y, seed=0,
                                         youden_weights={"youden": 0.5})
        c = cv["called"]["youden"]
        same.append(weighted_youden(y, cv["oof"], 0.5)["j"])
        fold.append(c[y == 1].mean() + (1 - c[y == 0]).mean() - 1)
    assert min(same) >= 0 and np.mean(same) > np.mean(fold) + 0.1 and abs(np.mean(fold)) < 0.1


# ------------------------------------------------------------------------------------ Hosmer-Lemeshow
def test_hosmer_lemeshow_by_hand():
    """p = .1 .2 .3 .6 .7 .9, y = 0 0 1 0 1 1, 3 groups cut at the tertiles .2667 and .6333:
    {.1 .2}: O 0, E .3; {.3 .6}: O 1, E .9; {.7 .9}: O 2, E 1.6.
    C = .09/(.3*.85) + .01/(.9*.55) + .16/(1.6*.2) = 0.352941 + 0.020202 + 0.5 = 0.873143, df 1."""
    res = hosmer_lemeshow([0, 0, 1, 0, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.9], n_groups=3)
    c = 0.09 / (0.3 * 0.85) + 0.01 / (0.9 * 0.55) + 0.16 / (1.6 * 0.2)
    assert res["hl_statistic"] == pytest.approx(c, rel=1e-12) and c == pytest.approx(0.873143, abs=1e-6)
    assert res["hl_df"] == 1 and res["hl_p"] == pytest.approx(chi2.sf(c, 1), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_hosmer_lemeshow_matches_a_two_by_g_table_over_pandas_deciles(seed):
    """Re-derivation: groups from pandas' qcut (quantile cut points, right-closed, as R's
    hoslem.test), the statistic as the Pearson chi-square of the 2 x g observed/expected table."""
    rng = np.random.default_rng(seed)
    p = np.round(rng.beta(2, 3, 150), 2)  # rounded: tied probabilities
    y = (rng.random(150) < np.clip(p * 1.2, 0, 1)).astype(int)
    groups = pd.qcut(p, 10, labels=False, duplicates="drop")
    stat = 0.0
    for g in np.unique(groups):
        s = groups == g
        o1, e1 = y[s].sum(), p[s].sum()
        o0, e0 = s.sum() - o1, s.sum() - e1
        stat += (o1 - e1) ** 2 / e1 + (o0 - e0) ** 2 / e0
    g = len(np.unique(groups))
    res = hosmer_lemeshow(y, p)
    assert res["hl_groups"] == g and res["hl_df"] == g - 2
    assert res["hl_statistic"] == pytest.approx(stat, rel=1e-10)
    assert res["hl_p"] == pytest.approx(chi2.sf(stat, g - 2), rel=1e-10)
