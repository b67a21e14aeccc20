"""Safe model artefact (JSON + npz, no pickle) and predict_case: the NumPy re-implementation must
reproduce scikit-learn's fitted pipeline."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from NACResponseLib.errors import InputError
from NACResponseLib.modelling.artefact import load_model, save_model
from NACResponseLib.modelling.pipeline import ModelSpec, fit_model
from NACResponseLib.modelling.predict import predict_case
from NACResponseLib.modelling.selection import SelectionConfig

FAST = SelectionConfig(lasso_cv=5, lasso_lambdas=8, univariate_alpha=0.2)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 80
    X = pd.DataFrame(rng.normal(size=(n, 20)), columns=[f"pre__t2w__original_firstorder_F{i}" for i in range(20)])
    X["age"] = rng.normal(50, 10, n)
    X["subtype"] = rng.choice(["TN", "HR+/HER2-", "HR-/HER2+"], n)
    X.iloc[3, 2] = np.nan
    y = ((X.iloc[:, 0] - X.iloc[:, 1] + rng.normal(0, 0.8, n)) > 0).astype(int).to_numpy()
    return X, y


@pytest.mark.parametrize("clf", ["logistic", "naive_bayes", "knn", "mlp", "random_forest", "gradient_boosting"])
def test_saved_model_reproduces_sklearn(tmp_path, data, clf):
    X, y = data
    cfg = SelectionConfig(**{**FAST.to_dict(), "pca_components": 3 if clf == "mlp" else None})
    pipe = fit_model(ModelSpec("combined", clf, cfg), X, y)
    save_model(tmp_path / "m", pipe, target="pcr", kind="combined", operating_points={"youden": {"threshold": 0.5}},
               training_summary={"n": len(y)}, provenance={"step": "test"}, X_train=X)
    m = load_model(tmp_path / "m")
    Xt = X.iloc[:15].copy()
    Xt.iloc[0, 5] = np.nan  # imputed at prediction time too
    np.testing.assert_allclose(m.predict(Xt), pipe.predict_proba(Xt)[:, 1], rtol=1e-9, atol=1e-12)


def test_clinical_stepwise_model_round_trip(tmp_path, data):
    X, y = data
    Xc = X[["age", "subtype"]].assign(ki67=X.iloc[:, 0] * 10 + 30)
    pipe = fit_model(ModelSpec("clinical"), Xc, y)
    save_model(tmp_path / "c", pipe, target="pcr", kind="clinical", operating_points={},
               training_summary={}, provenance={}, X_train=Xc)
    m = load_model(tmp_path / "c")
    np.testing.assert_allclose(m.predict(Xc), pipe.predict_proba(Xc)[:, 1], rtol=1e-10)
    assert m.meta["steps"][-1]["odds_ratios"][0]["variable"] == "(intercept)"


def test_rcb_forest_regressor_round_trip(tmp_path, data):
    X, _ = data
    rcb = np.clip(2 + X.iloc[:, 0].to_numpy(), 0, None)
    pipe = fit_model(ModelSpec("radiomics", "random_forest", FAST, task="regression"), X.drop(columns="subtype"), rcb)
    save_model(tmp_path / "r", pipe, target="rcb_index", kind="radiomics", operating_points={},
               training_summary={}, provenance={})
    m = load_model(tmp_path / "r")
    assert m.meta["task"] == "regression"
    Xr = X.drop(columns="subtype")
    np.testing.assert_allclose(m.predict(Xr), pipe.predict(Xr), rtol=1e-10)


def test_artefact_is_pickle_free_and_versioned(tmp_path, data):
    X, y = data
    pipe = fit_model(ModelSpec("radiomics", "random_forest", FAST), X.drop(columns="subtype"), y)
    d = save_model(tmp_path / "m", pipe, target="pcr", kind="radiomics", operating_points={},
                   training_summary={}, provenance={"step": "model train"})
    with zipfile.ZipFile(d / "arrays.npz") as z:
        for name in z.namelist():
            with z.open(name) as fh:
                header = fh.read(200)
            assert b"'descr': '|O'" not in header  # no object arrays (which would need pickle)
    with np.load(d / "arrays.npz", allow_pickle=False) as z:
        assert len(z.files) > 0
    meta = json.loads((d / "model.json").read_text())
    assert meta["format"] == "nacresponse-model" and meta["format_version"] == 2
    with pytest.raises(InputError, match="already exists"):
        save_model(d, pipe, target="pcr", kind="radiomics", operating_points={}, training_summary={}, provenance={})
    meta["format_version"] = 99
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="newer"):
        load_model(d)


def test_unsavable_classifier_is_refused(tmp_path, data):
    X, y = data
    pipe = fit_model(ModelSpec("radiomics", "svm", FAST), X.drop(columns="subtype"), y)
    with pytest.raises(InputError, match="cannot be saved"):
        save_model(tmp_path / "s", pipe, target="pcr", kind="radiomics", operating_points={},
                   training_summary={}, provenance={})


def test_predict_case_names_missing_features_and_explains(tmp_path, data):
    X, y = data
    pipe = fit_model(ModelSpec("combined", "logistic", FAST), X, y)
    save_model(tmp_path / "m", pipe, target="pcr", kind="combined",
               operating_points={"early": {"threshold": 0.3}, "late": {"threshold": 0.7}},
               training_summary={}, provenance={}, X_train=X)
    case = X.iloc[7].to_dict()
    out = predict_case(tmp_path / "m", case, top_n=3)
    assert out["probability"] == pytest.approx(pipe.predict_proba(X.iloc[[7]])[0, 1], rel=1e-9)
    for name, thr in (("early", 0.3), ("late", 0.7)):
        assert out["classes"][name]["class"] == int(out["probability"] >= thr)
    # logistic contributions (coef x standardised value) add up to the linear predictor
    m = load_model(tmp_path / "m")
    full = predict_case(m, case, top_n=100)
    lp = np.log(out["probability"] / (1 - out["probability"]))
    intercept_at_mean = np.log(m.predict_from_matrix(m.arrays["input_mean"][None])[0] /
                               (1 - m.predict_from_matrix(m.arrays["input_mean"][None])[0]))
    assert sum(t["contribution"] for t in full["top_features"]) == pytest.approx(lp - intercept_at_mean, rel=1e-8)
    case.pop(X.columns[0])
    with pytest.raises(InputError, match=X.columns[0]):
        predict_case(tmp_path / "m", case)


@pytest.mark.parametrize("clf,pca", [("logistic", None), ("logistic", 3), ("naive_bayes", None), ("knn", None),
                                     ("mlp", 3), ("random_forest", None), ("gradient_boosting", None)])
def test_numpy_prediction_reads_sklearn_fitted_attributes_to_1e12(tmp_path, data, clf, pca):
    """The saved steps are scikit-learn's SimpleImputer, StandardScaler and PCA plus our selectors:
    the NumPy re-implementation must give sklearn's own transform and predict_proba to 1e-12."""
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    X, y = data
    pipe = fit_model(ModelSpec("combined", clf, SelectionConfig(**{**FAST.to_dict(), "pca_components": pca})), X, y)
    kinds = {type(s) for _, s in pipe.steps}
    assert {SimpleImputer, StandardScaler} <= kinds and (pca is None or any(issubclass(k, PCA) for k in kinds))
    save_model(tmp_path / "m", pipe, target="pcr", kind="combined", operating_points={},
               training_summary={}, provenance={}, X_train=X)
    m = load_model(tmp_path / "m")
    Xt = X.iloc[:25].copy()
    Xt.iloc[1, 4] = np.nan
    inner = m.transform(Xt)
    ref = pipe[:-1].transform(Xt)
    assert list(inner.columns) == list(ref.columns)
    np.testing.assert_allclose(inner.to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.predict(Xt), pipe.predict_proba(Xt)[:, 1], rtol=0, atol=1e-12)


def test_model_json_is_strict_and_keeps_an_infinite_threshold(tmp_path, data):
    """An operating point at +inf (call nobody positive) is written as the string "Infinity", not the
    bare literal other JSON parsers refuse, and loads back as a float."""
    X, y = data
    pipe = fit_model(ModelSpec("radiomics", "logistic", FAST), X.drop(columns=["subtype"]), y)
    save_model(tmp_path / "m", pipe, target="pcr", kind="radiomics", operating_points={"none": {"threshold": np.inf}},
               training_summary={"n": len(y)}, provenance={"step": "test"})

    def refuse(name):
        raise ValueError(name)

    meta = json.loads((tmp_path / "m" / "model.json").read_text(), parse_constant=refuse)
    assert meta["operating_points"]["none"]["threshold"] == "Infinity"
    assert load_model(tmp_path / "m").operating_points["none"]["threshold"] == np.inf
