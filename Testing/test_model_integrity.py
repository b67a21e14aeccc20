"""A saved model folder that was damaged or edited is refused with a ``ModelFileError`` naming the
file and the problem (exit 2 from the CLI), never a traceback or a silent NaN probability; an edit
that keeps the folder consistent (arrays changed and their SHA-256 updated) is accepted."""

import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from NACResponseLib.cli import main
from NACResponseLib.errors import NACError
from NACResponseLib.modelling.artefact import ModelFileError, load_model, save_model
from NACResponseLib.modelling.pipeline import ModelSpec, fit_model
from NACResponseLib.modelling.selection import SelectionConfig

FAST = SelectionConfig(lasso_cv=3, lasso_lambdas=5, univariate_alpha=0.2)


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 8)), columns=[f"pre__t2w__original_firstorder_F{i}" for i in range(8)])
    X["subtype"] = rng.choice(["TN", "HR+/HER2-"], n)
    y = ((X.iloc[:, 0] - X.iloc[:, 1] + rng.normal(0, 0.8, n)) > 0).astype(int).to_numpy()
    return X, y


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One logistic and one random-forest model, saved once; each test edits a copy."""
    X, y = _data()
    root = tmp_path_factory.mktemp("models")
    for clf in ("logistic", "random_forest"):
        pipe = fit_model(ModelSpec("combined", clf, FAST), X, y)
        save_model(root / clf, pipe, target="pcr", kind="combined",
                   operating_points={"youden": {"threshold": 0.5}}, training_summary={}, provenance={}, X_train=X)
    return root, X


def _copy(saved, tmp_path, clf="logistic"):
    root, X = saved
    d = tmp_path / clf
    d.mkdir()
    for name in ("model.json", "arrays.npz"):
        (d / name).write_bytes((root / clf / name).read_bytes())
    return d, X


def _read(d):
    meta = json.loads((d / "model.json").read_text())
    with np.load(d / "arrays.npz", allow_pickle=False) as z:
        return meta, {k: z[k] for k in z.files}


def _write(d, meta, arrays, *, update_hash=True):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (d / "arrays.npz").write_bytes(buf.getvalue())
    if update_hash and isinstance(meta, dict):
        meta["arrays_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (d / "model.json").write_text(json.dumps(meta))


def _estimator_key(meta):
    return f"s{len(meta['steps']) - 1}"


def _scale_coef(meta, arrays, factor=-1000.0):
    k = _estimator_key(meta)
    arrays[f"{k}_coef"] = arrays[f"{k}_coef"] * factor


def _nan_coef(meta, arrays):
    k = _estimator_key(meta)
    arrays[f"{k}_coef"] = np.where(np.arange(len(arrays[f"{k}_coef"])) == 0, np.nan, arrays[f"{k}_coef"])


def _drop(meta, arrays):
    del arrays[f"{_estimator_key(meta)}_coef"]


def _truncate(meta, arrays):
    k = _estimator_key(meta)
    arrays[f"{k}_coef"] = arrays[f"{k}_coef"][:-1]


def _overflow(meta, arrays):
    """Finite coefficients whose linear predictor is inf - inf = NaN for an ordinary case."""
    k = _estimator_key(meta)
    n = len(arrays[f"{k}_coef"])
    assert n >= 2
    arrays[f"{k}_coef"] = np.where(np.arange(n) % 2 == 0, 1e308, -1e308)


def _rename_feature(meta, arrays):
    meta["feature_columns"][0] += "_renamed"


def _rename_inner(meta, arrays):
    st = meta["steps"][2]
    st["columns"][0] += "_renamed"


def _list_top(meta, arrays):
    return [meta]


def _list_step(meta, arrays):
    meta["steps"][1] = [meta["steps"][1]]


def _list_ops(meta, arrays):
    meta["operating_points"] = [0.5]


def _nan_threshold(meta, arrays):
    meta["operating_points"]["youden"]["threshold"] = float("nan")


def _no_hash(meta, arrays):
    del meta["arrays_sha256"]


def _unknown_step(meta, arrays):
    meta["steps"][1]["type"] = "whiten"


def _empty_steps(meta, arrays):
    meta["steps"] = []


# (edit, keep the recorded hash stale?, message the error must contain, file it must name)
PROBES = {
    "npz changed, hash not updated": (_scale_coef, True, "SHA-256 does not match", "arrays.npz"),
    "NaN coefficients": (_nan_coef, False, "NaN or infinite", "arrays.npz"),
    "missing array": (_drop, False, "is missing", "arrays.npz"),
    "wrong shape": (_truncate, False, "has shape", "arrays.npz"),
    "renamed feature column": (_rename_feature, False, "reads columns", "model.json"),
    "renamed column inside the chain": (_rename_inner, False, "reads columns", "model.json"),
    "list instead of object": (_list_top, False, "must be a JSON object", "model.json"),
    "step is a list": (_list_step, False, "step 1 must be a JSON object", "model.json"),
    "operating points a list": (_list_ops, False, "'operating_points' must be a JSON object", "model.json"),
    "NaN threshold": (_nan_threshold, False, "threshold must be a finite number", "model.json"),
    "no recorded hash": (_no_hash, True, "no 'arrays_sha256'", "model.json"),
    "unknown step type": (_unknown_step, False, "unknown type 'whiten'", "model.json"),
    "no steps": (_empty_steps, False, "non-empty list", "model.json"),
}


@pytest.mark.parametrize("probe", list(PROBES))
def test_tampered_model_is_refused_naming_the_file(saved, tmp_path, probe):
    edit, stale, message, name = PROBES[probe]
    d, X = _copy(saved, tmp_path)
    meta, arrays = _read(d)
    replaced = edit(meta, arrays)
    meta = meta if replaced is None else replaced
    if stale:
        old = meta.get("arrays_sha256")
        _write(d, meta, arrays, update_hash=False)
        assert json.loads((d / "model.json").read_text()).get("arrays_sha256") == old
    else:
        _write(d, meta, arrays)
    with pytest.raises(ModelFileError, match=message) as info:
        load_model(d).predict(X.iloc[:5])
    assert str(d / name) in str(info.value)
    assert isinstance(info.value, NACError)


def test_overflowing_coefficients_give_no_nan_probability(saved, tmp_path):
    d, X = _copy(saved, tmp_path)
    meta, arrays = _read(d)
    _overflow(meta, arrays)
    _write(d, meta, arrays)
    m = load_model(d)  # finite arrays with a matching hash load ...
    with pytest.raises(ModelFileError, match="non-finite prediction") as info:
        with np.errstate(over="ignore", invalid="ignore"):  # ... but a NaN probability is refused
            m.predict(X.iloc[:5].assign(**{c: 50.0 for c in X.columns[:-1]}))
    assert str(d) in str(info.value)


def test_consistent_edit_with_updated_hash_is_accepted(saved, tmp_path):
    """Coefficients x -1000 with the hash updated is a valid (different) model: integrity, not
    authorship, is what the hash checks."""
    d, X = _copy(saved, tmp_path)
    before = load_model(d).predict(X.iloc[:10])
    meta, arrays = _read(d)
    _scale_coef(meta, arrays)
    _write(d, meta, arrays)
    after = load_model(d).predict(X.iloc[:10])
    assert np.all(np.isfinite(after)) and not np.allclose(before, after)


@pytest.mark.parametrize("probe", ["child index loops back", "split on a feature it does not have"])
def test_broken_tree_arrays_are_refused(saved, tmp_path, probe):
    d, X = _copy(saved, tmp_path, "random_forest")
    meta, arrays = _read(d)
    k = _estimator_key(meta)
    if probe == "child index loops back":
        arrays[f"{k}_left"][0] = 0
    else:
        inner = np.flatnonzero(arrays[f"{k}_left"] >= 0)[0]
        arrays[f"{k}_feature"][inner] = 10_000
    _write(d, meta, arrays)
    with pytest.raises(ModelFileError, match="do not form trees"):
        load_model(d)


def test_garbage_arrays_with_matching_hash(saved, tmp_path):
    d, _ = _copy(saved, tmp_path)
    meta, _ = _read(d)
    (d / "arrays.npz").write_bytes(b"PK\x03\x04 not really a zip")
    meta["arrays_sha256"] = hashlib.sha256((d / "arrays.npz").read_bytes()).hexdigest()
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="unreadable model arrays"):
        load_model(d)


def test_cli_predict_exits_2_on_a_tampered_model(saved, tmp_path, capsys):
    d, X = _copy(saved, tmp_path)
    meta, arrays = _read(d)
    _scale_coef(meta, arrays)
    _write(d, meta, arrays, update_hash=False)
    cases = tmp_path / "cases.csv"
    X.iloc[:3].to_csv(cases, index=False)
    assert main(["model", "predict", str(d), "--features", str(cases)]) == 2
    err = capsys.readouterr().err
    assert "arrays.npz" in err and "SHA-256 does not match" in err and "Traceback" not in err


def test_a_format_1_folder_without_array_hash_is_refused_with_retrain(saved, tmp_path):
    """Format 1 folders predate the arrays' SHA-256: they are refused with "retrain", not trusted."""
    d, _ = _copy(saved, tmp_path)
    meta = json.loads((d / "model.json").read_text())
    meta["format_version"] = 1
    meta.pop("arrays_sha256")
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="format version 1.*retrain"):
        load_model(d)
