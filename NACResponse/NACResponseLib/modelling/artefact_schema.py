"""What a saved model folder must hold before any prediction runs from it.

``load_model`` calls ``check_model`` after the arrays' SHA-256 matched the one in ``model.json``, so
a damaged or edited folder ends in one ``ModelFileError`` naming the file and the problem (exit 2),
never in a KeyError deep inside prediction or a silent NaN probability.  The checks follow the
step chain: each step must read exactly the columns the step before it produced, and every array a
step uses must exist with the shape its columns imply and hold finite numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

STEP_TYPES = ("encode", "impute", "select", "zscore", "pca")
ESTIMATOR_TYPES = ("logistic", "naive_bayes", "knn", "mlp", "forest", "forest_regressor", "gbm")
TREE_ARRAYS = ("left", "right", "feature", "threshold", "value", "roots")


class ModelFileError(InputError):
    """A saved model folder is damaged, edited or inconsistent (the message names the file)."""


class _Checker:
    def __init__(self, meta_path: Path, arr_path: Path, arrays: dict[str, np.ndarray]):
        self.meta_path, self.arr_path, self.arrays = meta_path, arr_path, arrays

    def fail(self, problem: str, in_arrays: bool = False):
        raise ModelFileError(f"{self.arr_path if in_arrays else self.meta_path}: {problem}")

    def obj(self, value, what: str) -> dict:
        if not isinstance(value, dict):
            self.fail(f"{what} must be a JSON object, found {type(value).__name__}")
        return value

    def names(self, value, what: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            self.fail(f"{what} must be a list of column names")
        if len(set(value)) != len(value):
            self.fail(f"{what} names a column twice")
        return value

    def number(self, value, what: str, *, positive: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
        if not ok or (positive and value <= 0):
            self.fail(f"{what} must be a finite{' positive' if positive else ''} number, found {value!r}")
        return float(value)

    def array(self, key: str, shape: tuple, what: str, *, integer: bool = False) -> np.ndarray:
        """``shape`` entries: an int, or None for any length."""
        if key not in self.arrays:
            self.fail(f"array {key!r} ({what}) is missing", in_arrays=True)
        a = self.arrays[key]
        kind = "iu" if integer else "fiu"
        if a.dtype.kind not in kind or a.ndim != len(shape) or any(
                s is not None and s != n for s, n in zip(shape, a.shape)):
            want = "x".join("?" if s is None else str(s) for s in shape)
            self.fail(f"array {key!r} ({what}) has shape {a.shape} and type {a.dtype}; expected "
                      f"{'integer' if integer else 'numeric'} {want}", in_arrays=True)
        if not integer and not np.all(np.isfinite(a)):
            self.fail(f"array {key!r} ({what}) holds NaN or infinite values", in_arrays=True)
        return a


def check_model(meta: Any, arrays: dict[str, np.ndarray], meta_path: Path, arr_path: Path) -> None:
    """Raise ``ModelFileError`` unless ``meta`` + ``arrays`` form a model prediction can run from."""
    c = _Checker(meta_path, arr_path, arrays)
    meta = c.obj(meta, "the model description")
    for key in ("target", "kind", "task"):
        if not isinstance(meta.get(key), str):
            c.fail(f"{key!r} must be a string, found {meta.get(key)!r}")
    columns = c.names(meta.get("feature_columns"), "'feature_columns'")
    for name, op in c.obj(meta.get("operating_points", {}), "'operating_points'").items():
        thr = c.obj(op, f"operating point {name!r}").get("threshold")
        if thr != float("inf"):  # +inf: the operating point "call nobody positive"
            c.number(thr, f"operating point {name!r} threshold")
    steps = meta.get("steps")
    if not isinstance(steps, list) or not steps:
        c.fail("'steps' must be a non-empty list")
    for i, st in enumerate(steps):
        st = c.obj(st, f"step {i}")
        last = i == len(steps) - 1
        t = st.get("type")
        if t not in (ESTIMATOR_TYPES if last else STEP_TYPES):
            where = "the last step (the estimator)" if last else f"step {i}"
            c.fail(f"{where} has unknown type {t!r} (model written by a newer version?)")
        cols = c.names(st.get("columns"), f"step {i} ({t}) 'columns'")
        if cols != columns:
            c.fail(f"step {i} ({t}) reads columns {_diff(cols, columns)}, but the step before it "
                   f"produces {_diff(columns, cols)}")
        columns = _check_preprocess(c, i, st, cols) if not last else _check_estimator(c, i, st, cols)
    if "input_mean" in arrays:
        c.array("input_mean", (len(columns),), "training mean of the estimator's inputs")


def _diff(a: list[str], b: list[str]) -> str:
    extra = [x for x in a if x not in set(b)]
    if not extra:
        return f"the same {len(a)} columns in another order" if a != b else f"{len(a)} columns"
    return f"{len(a)} columns including {', '.join(map(repr, extra[:3]))}"


def _check_preprocess(c: _Checker, i: int, st: dict, cols: list[str]) -> list[str]:
    key, t, n = f"s{i}", st["type"], len(cols)
    if t == "encode":
        levels = c.obj(st.get("levels"), f"step {i} 'levels'")
        for col, lv in levels.items():
            if col not in cols or not isinstance(lv, list) or not all(isinstance(v, str) for v in lv):
                c.fail(f"step {i} 'levels' of {col!r} must be a list of strings for one of its columns")
        expected: list[str] = []
        for col in cols:
            expected += [f"{col}={v}" for v in levels[col][1:]] if col in levels else [col]
        out = c.names(st.get("columns_out"), f"step {i} 'columns_out'")
        if out != expected:
            c.fail(f"step {i} (encode) 'columns_out' does not follow from its columns and levels")
        return out
    if t == "impute":
        c.array(f"{key}_median", (n,), f"step {i} medians")
        return cols
    if t == "select":
        out = c.names(st.get("columns_out"), f"step {i} 'columns_out'")
        if [x for x in cols if x in set(out)] != out:
            c.fail(f"step {i} (select) keeps columns it does not read: {_diff(out, cols)}")
        return out
    if t == "zscore":
        c.array(f"{key}_mean", (n,), f"step {i} means")
        if np.any(c.array(f"{key}_scale", (n,), f"step {i} scales") <= 0):
            c.fail(f"array '{key}_scale' (step {i} scales) holds a scale <= 0", in_arrays=True)
        return cols
    out = c.names(st.get("columns_out"), f"step {i} 'columns_out'")
    c.array(f"{key}_mean", (n,), f"step {i} PCA mean")
    c.array(f"{key}_components", (len(out), n), f"step {i} PCA components")
    return out


def _check_estimator(c: _Checker, i: int, st: dict, cols: list[str]) -> list[str]:
    key, t, n = f"s{i}", st["type"], len(cols)
    if t == "logistic":
        c.array(f"{key}_coef", (n,), "logistic coefficients")
        c.array(f"{key}_intercept", (1,), "logistic intercept")
    elif t == "naive_bayes":
        c.array(f"{key}_theta", (2, n), "naive Bayes class means")
        if np.any(c.array(f"{key}_var", (2, n), "naive Bayes variances") <= 0):
            c.fail(f"array '{key}_var' holds a variance <= 0", in_arrays=True)
        prior = c.array(f"{key}_prior", (2,), "naive Bayes class priors")
        if np.any(prior <= 0):
            c.fail(f"array '{key}_prior' holds a prior <= 0", in_arrays=True)
    elif t == "knn":
        fx = c.array(f"{key}_X", (None, n), "KNN training points")
        c.array(f"{key}_y", (len(fx),), "KNN training labels", integer=True)
        k = st.get("k")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(fx):
            c.fail(f"KNN 'k' must be an integer between 1 and {len(fx)}, found {k!r}")
        c.number(st.get("p"), "KNN 'p'", positive=True)
        if st.get("weights") not in ("uniform", "distance"):
            c.fail(f"KNN 'weights' must be 'uniform' or 'distance', found {st.get('weights')!r}")
    elif t == "mlp":
        layers = st.get("layers")
        if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
            c.fail(f"MLP 'layers' must be a positive integer, found {layers!r}")
        if st.get("activation") not in ("relu", "tanh", "logistic", "identity"):
            c.fail(f"MLP 'activation' {st.get('activation')!r} is not one of relu, tanh, logistic, identity")
        width = n
        for j in range(layers):
            w = c.array(f"{key}_W{j}", (width, 1 if j == layers - 1 else None), f"MLP layer {j} weights")
            width = w.shape[1]
            c.array(f"{key}_b{j}", (width,), f"MLP layer {j} biases")
    else:
        _check_trees(c, key, n)
        if t == "gbm":
            c.number(st.get("learning_rate"), "gradient boosting 'learning_rate'", positive=True)
            c.number(st.get("init_raw"), "gradient boosting 'init_raw'")
    return cols


def _check_trees(c: _Checker, key: str, n_features: int) -> None:
    left = c.array(f"{key}_left", (None,), "tree left children", integer=True)
    m = len(left)
    right = c.array(f"{key}_right", (m,), "tree right children", integer=True)
    feature = c.array(f"{key}_feature", (m,), "tree split features", integer=True)
    c.array(f"{key}_threshold", (m,), "tree split thresholds")
    c.array(f"{key}_value", (m,), "tree leaf values")
    roots = c.array(f"{key}_roots", (None,), "tree roots", integer=True)
    inner = left >= 0
    bad = (len(roots) == 0 or np.any((roots < 0) | (roots >= m)) or np.any(inner != (right >= 0))
           or np.any(left[inner] >= m) or np.any(right[inner] >= m)
           or np.any(left[inner] <= np.flatnonzero(inner)) or np.any(right[inner] <= np.flatnonzero(inner))
           or np.any((feature[inner] < 0) | (feature[inner] >= n_features)))
    if bad:
        c.fail(f"the tree arrays '{key}_*' do not form trees over {n_features} features", in_arrays=True)
