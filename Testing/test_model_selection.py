"""Feature-selection steps, the clinical stepwise model, and the leakage guard."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from NACResponseLib.columns import feature_id
from NACResponseLib.modelling.clinical import BackwardStepwiseLogit, ClinicalEncoder
from NACResponseLib.modelling.evaluation import roc_auc
from NACResponseLib.modelling.pipeline import (
    ModelSpec,
    cross_validated_predictions,
    fit_model,
    selection_report,
)
from NACResponseLib.modelling.selection import (
    ICCWhitelist,
    LassoSelector,
    NearConstantFilter,
    SelectionConfig,
    SpearmanRedundancy,
    UnivariateFilter,
)

FAST = SelectionConfig(lasso_cv=5, lasso_lambdas=8)


def test_feature_id_of_wide_and_delta_columns():
    assert feature_id("pre__dce_early__original_firstorder_Mean") == "dce_early__original_firstorder_Mean"
    assert feature_id("delta_rel__pre_c2__adc__wavelet-LLH_glcm_Contrast") == "adc__wavelet-LLH_glcm_Contrast"
    assert feature_id("pre__bn_017") is None and feature_id("age") is None


def test_icc_whitelist_keeps_only_reproducible_radiomics():
    cols = ["pre__t2w__original_shape_Sphericity", "c2__t2w__original_shape_Sphericity",
            "delta_abs__pre_c2__t2w__original_glcm_Idm", "pre__bn_001", "age"]
    X = pd.DataFrame(np.zeros((3, len(cols))), columns=cols)
    wl = {"t2w__original_shape_Sphericity": True, "t2w__original_glcm_Idm": False}
    kept = ICCWhitelist(wl).fit(X).get_feature_names_out().tolist()
    assert kept == cols[:2] + cols[3:]
    assert ICCWhitelist(wl, unknown="drop").fit(X).get_feature_names_out().tolist() == cols[:2]
    assert ICCWhitelist(None).fit(X).transform(X).shape == (3, 5)


def test_near_constant_filter():
    X = pd.DataFrame({"const": np.ones(40), "mostly": [0.0] * 39 + [1.0], "ok": np.arange(40.0)})
    assert NearConstantFilter(max_mode_fraction=0.95).fit(X).get_feature_names_out().tolist() == ["ok"]
    assert NearConstantFilter(max_mode_fraction=0.99).fit(X).get_feature_names_out().tolist() == ["mostly", "ok"]


def test_redundancy_keeps_the_feature_more_associated_with_target():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    strong = y * 2.0 + rng.normal(0, 1, 100)
    weak_copy = strong + rng.normal(0, 0.4, 100)  # rho ~0.95 with strong, less associated with y
    other = rng.normal(0, 1, 100)
    X = pd.DataFrame({"weak_copy": weak_copy, "strong": strong, "other": other})
    assert abs(stats.spearmanr(weak_copy, strong).statistic) > 0.8
    assert abs(stats.spearmanr(strong, y).statistic) > abs(stats.spearmanr(weak_copy, y).statistic)
    kept = SpearmanRedundancy(0.8).fit(X, y).get_feature_names_out().tolist()
    assert sorted(kept) == ["other", "strong"]
    assert sorted(SpearmanRedundancy(0.99).fit(X, y).get_feature_names_out()) == sorted(X.columns)


def test_mann_whitney_pvalues_match_scipy():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 30)
    X = pd.DataFrame({"sig": y + rng.normal(0, 0.7, 60), "noise": rng.normal(0, 1, 60)})
    f = UnivariateFilter(alpha=0.05).fit(X, y)
    for j, c in enumerate(X.columns):
        ref = stats.mannwhitneyu(X[c][y == 1], X[c][y == 0], alternative="two-sided").pvalue
        assert f.pvalues_[j] == pytest.approx(ref, rel=1e-12)
    assert f.get_feature_names_out().tolist() == ["sig"]
    none = UnivariateFilter(alpha=1e-12, min_keep=1).fit(X, y)
    assert none.fallback_ and none.get_feature_names_out().tolist() == ["sig"]


def test_lasso_keeps_informative_features():
    rng = np.random.default_rng(2)
    n = 120
    X = pd.DataFrame(rng.normal(size=(n, 12)), columns=[f"f{i}" for i in range(12)])
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * X["f0"] - 2 * X["f1"])))).astype(int)
    sel = LassoSelector(cv=5, n_lambdas=10).fit(X, y)
    kept = set(sel.get_feature_names_out())
    assert {"f0", "f1"} <= kept and len(kept) < 12
    assert sel.coef_[0] > 0 > sel.coef_[1]


def test_clinical_encoder_levels_and_unknowns():
    X = pd.DataFrame({"age": [40, 50, None], "subtype": ["TN", "HR+/HER2-", None]})
    enc = ClinicalEncoder().fit(X)
    out = enc.transform(pd.DataFrame({"age": [60], "subtype": ["TN"]}))
    assert list(out.columns) == ["age", "subtype=TN"] and out.iloc[0].tolist() == [60.0, 1.0]
    assert enc.transform(pd.DataFrame({"age": [1], "subtype": ["unseen"]}))["subtype=TN"].iloc[0] == 0.0


def test_backward_stepwise_drops_noise_and_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(4)
    n = 250
    X = pd.DataFrame({"ki67": rng.normal(0, 1, n), "her2": rng.integers(0, 2, n).astype(float),
                      "noise1": rng.normal(0, 1, n), "noise2": rng.normal(0, 1, n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + 1.2 * X["ki67"] + 1.0 * X["her2"])))).astype(int)
    m = BackwardStepwiseLogit().fit(X, y)
    assert {"ki67", "her2"} <= set(m.selected_)
    ref = sm.Logit(y, sm.add_constant(X[m.selected_])).fit(disp=0)
    assert m.aic_ == pytest.approx(ref.aic, rel=1e-8)
    np.testing.assert_allclose(m.odds_ratios_["odds_ratio"], np.exp(ref.params), rtol=1e-6)
    np.testing.assert_allclose(m.odds_ratios_[["or_ci_low", "or_ci_high"]], np.exp(ref.conf_int()), rtol=1e-5)
    # backward elimination stopped at a local AIC minimum: removing any variable raises the AIC
    for v in m.selected_:
        rest = [c for c in m.selected_ if c != v]
        assert sm.Logit(y, sm.add_constant(X[rest]) if rest else np.ones((n, 1))).fit(disp=0).aic > m.aic_


def _noise_data(n=40, p=150, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"pre__dce_early__original_firstorder_F{i}" for i in range(p)])
    y = np.repeat([0, 1], n // 2)
    return X, y


@pytest.mark.slow
def test_shuffled_labels_give_chance_auc_through_the_whole_pipeline():
    """Leakage guard: selection inside CV gives chance AUC on noise; selecting on all data first
    (the leak) would not - the second assertion proves the check can fail."""
    X, y = _noise_data()
    spec = ModelSpec("radiomics", selection=FAST)
    rng = np.random.default_rng(9)
    aucs = [roc_auc(yy, cross_validated_predictions(spec, X, yy, seed=k)["oof"])
            for k, yy in enumerate(rng.permutation(y) for _ in range(4))]
    assert abs(np.mean(aucs) - 0.5) < 0.15
    leaky_cols = UnivariateFilter(alpha=0.05).fit(X, y).get_feature_names_out().tolist()
    leaky = cross_validated_predictions(ModelSpec("radiomics", selection=SelectionConfig(
        univariate_alpha=1.0, lasso=False)), X[leaky_cols], y)
    assert roc_auc(y, leaky["oof"]) > 0.75


def test_selection_report_lists_steps_and_coefficients():
    rng = np.random.default_rng(3)
    X, _ = _noise_data(60, 30, 3)
    y = (X.iloc[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(int).to_numpy()
    rep = selection_report(fit_model(ModelSpec("radiomics", selection=FAST), X, y))
    assert [s["step"] for s in rep["steps"]][:3] == ["encode", "impute", "icc"]
    assert rep["features"][0] == X.columns[0] and rep["weights"][X.columns[0]] > 0


def test_lightgbm_is_optional():
    from NACResponseLib.errors import InputError
    from NACResponseLib.modelling.classifiers import CLASSIFIERS, make_classifier

    assert "lightgbm" in CLASSIFIERS
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="optional package lightgbm"):
            make_classifier("lightgbm")
    else:
        assert hasattr(make_classifier("lightgbm"), "predict_proba")
    with pytest.raises(InputError, match="unknown classifier"):
        make_classifier("xgboost")
