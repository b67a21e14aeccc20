"""A safe, versioned model artefact: ``model.json`` (schema, steps, operating points, training
summary, provenance) + ``arrays.npz`` (NumPy arrays, loaded with ``allow_pickle=False``).

No pickle: a model file from someone else cannot run code on load.  ``model.json`` records the
SHA-256 of ``arrays.npz``; loading refuses a mismatch and checks the whole step chain
(``artefact_schema``), and prediction refuses a non-finite probability.  Prediction from a saved model
is re-implemented here in NumPy from the stored parameters (tests check it against the fitted
scikit-learn pipeline), so loading needs neither scikit-learn nor the original classes.

What can be saved: every selection step, the z-score, PCA projections, and the final estimators
logistic regression (incl. the stepwise clinical model), Gaussian naive Bayes, KNN, MLP, random
forest (classifier and RCB regressor) and gradient boosting - all expressible as arrays (trees as
node tables).  SVM (libsvm's Platt scaling), AdaBoost and LightGBM are evaluated but not saved; a
clear error says so.  We chose this over skops to keep the format dependency-free and auditable.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from ..provenance import read_json, write_json
from .artefact_schema import ModelFileError, check_model
from .logit import sigmoid

FORMAT = "nacresponse-model"
FORMAT_VERSION = 2  # 2: arrays.npz hashed into model.json (format 1 had no hash)
SAVABLE = ("logistic", "naive_bayes", "knn", "mlp", "random_forest", "gradient_boosting")


# --------------------------------------------------------------------------------------- export
def _names(values) -> list[str]:
    return [str(c) for c in values]


def _export_step(i: int, name: str, step, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """One fitted pipeline step as JSON + arrays, read from the estimator's fitted attributes."""
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    from .clinical import BackwardStepwiseLogit, ClinicalEncoder
    from .selection import ColumnSelector, LassoSelector

    key = f"s{i}"
    if isinstance(step, ClinicalEncoder):
        return {"name": name, "type": "encode", "columns": _names(step.feature_names_in_), "levels": step.levels_,
                "columns_out": _names(step.get_feature_names_out())}
    if isinstance(step, SimpleImputer):
        if step.strategy != "median" or not step.keep_empty_features or step.add_indicator:
            raise InputError("only median imputation that keeps empty features can be saved")
        arrays[f"{key}_median"] = np.asarray(step.statistics_, dtype=float)
        return {"name": name, "type": "impute", "columns": _names(step.feature_names_in_)}
    if isinstance(step, ColumnSelector):
        d = {"name": name, "type": "select", "columns": _names(step.feature_names_in_),
             "columns_out": _names(step.get_feature_names_out())}
        if isinstance(step, LassoSelector):
            d["lasso_coef"] = dict(zip(d["columns"], map(float, step.coef_)))
            d["lambda"] = getattr(step, "lambda_", None)
        return d
    if isinstance(step, StandardScaler):
        n = len(step.feature_names_in_)
        arrays[f"{key}_mean"] = step.mean_ if step.with_mean else np.zeros(n)
        arrays[f"{key}_scale"] = step.scale_ if step.with_std else np.ones(n)
        return {"name": name, "type": "zscore", "columns": _names(step.feature_names_in_)}
    if isinstance(step, PCA):
        if step.whiten:
            raise InputError("a whitened PCA cannot be saved")
        arrays[f"{key}_mean"], arrays[f"{key}_components"] = step.mean_, step.components_
        return {"name": name, "type": "pca", "columns": _names(step.feature_names_in_),
                "columns_out": _names(step.get_feature_names_out())}
    return _export_estimator(key, name, step, arrays, BackwardStepwiseLogit)


def _classes_ok(est) -> None:
    if hasattr(est, "classes_") and list(np.asarray(est.classes_).tolist()) != [0, 1]:
        raise InputError(f"cannot save {type(est).__name__}: classes must be 0/1, got {est.classes_}")


def _export_trees(key: str, trees, arrays, kind: str) -> None:
    lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
    off = 0
    for t in trees:
        tr = t.tree_
        left = tr.children_left.astype(np.int64)
        right = tr.children_right.astype(np.int64)
        lefts.append(np.where(left >= 0, left + off, -1))
        rights.append(np.where(right >= 0, right + off, -1))
        feats.append(tr.feature.astype(np.int64))
        thrs.append(tr.threshold.astype(np.float64))
        v = tr.value[:, 0, :]
        vals.append(v[:, 1] / v.sum(axis=1) if kind == "classifier" else v[:, 0])
        roots.append(off)
        off += tr.node_count
    arrays[f"{key}_left"], arrays[f"{key}_right"] = np.concatenate(lefts), np.concatenate(rights)
    arrays[f"{key}_feature"], arrays[f"{key}_threshold"] = np.concatenate(feats), np.concatenate(thrs)
    arrays[f"{key}_value"], arrays[f"{key}_roots"] = np.concatenate(vals), np.array(roots, np.int64)


def _export_estimator(key, name, est, arrays, stepwise_cls) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    cols = [str(c) for c in getattr(est, "feature_names_in_", [])]
    if isinstance(est, (LogisticRegression, stepwise_cls)):
        _classes_ok(est)
        arrays[f"{key}_coef"] = np.ravel(est.coef_).astype(float)
        arrays[f"{key}_intercept"] = np.ravel(est.intercept_).astype(float)
        d = {"name": name, "type": "logistic", "columns": cols}
        if isinstance(est, stepwise_cls):
            d["odds_ratios"] = est.odds_ratios_.to_dict(orient="records")
            d["selected"] = list(est.selected_)
            d["estimator"] = getattr(est, "estimator_", "ml")
            d["ci_method"] = getattr(est, "ci_method_", "wald")
        return d
    if isinstance(est, GaussianNB):
        _classes_ok(est)
        arrays[f"{key}_theta"], arrays[f"{key}_var"] = est.theta_, est.var_
        arrays[f"{key}_prior"] = est.class_prior_
        return {"name": name, "type": "naive_bayes", "columns": cols}
    if isinstance(est, KNeighborsClassifier):
        _classes_ok(est)
        if est.weights not in ("uniform", "distance") or est.effective_metric_ not in ("euclidean", "minkowski"):
            raise InputError("cannot save KNN with custom weights or metric")
        arrays[f"{key}_X"] = np.asarray(est._fit_X, dtype=float)
        arrays[f"{key}_y"] = np.asarray(est._y, dtype=np.int64)
        return {"name": name, "type": "knn", "columns": cols, "k": int(est.n_neighbors), "weights": est.weights,
                "p": float(est.effective_metric_params_.get("p", 2))}
    if isinstance(est, MLPClassifier):
        _classes_ok(est)
        for j, (w, b) in enumerate(zip(est.coefs_, est.intercepts_)):
            arrays[f"{key}_W{j}"], arrays[f"{key}_b{j}"] = w, b
        return {"name": name, "type": "mlp", "columns": cols, "activation": est.activation,
                "layers": len(est.coefs_)}
    if isinstance(est, RandomForestClassifier):
        _classes_ok(est)
        _export_trees(key, est.estimators_, arrays, "classifier")
        return {"name": name, "type": "forest", "columns": cols}
    if isinstance(est, RandomForestRegressor):
        _export_trees(key, est.estimators_, arrays, "regressor")
        return {"name": name, "type": "forest_regressor", "columns": cols}
    if isinstance(est, GradientBoostingClassifier):
        _classes_ok(est)
        if est.loss != "log_loss" or est.init not in (None,):
            raise InputError("only gradient boosting with log-loss and the default prior init can be saved")
        prior = float(est.init_.class_prior_[1])
        _export_trees(key, est.estimators_[:, 0], arrays, "regressor")
        return {"name": name, "type": "gbm", "columns": cols, "learning_rate": float(est.learning_rate),
                "init_raw": float(np.log(prior / (1 - prior)))}
    raise InputError(f"{type(est).__name__} cannot be saved in the safe model format; train with one of "
                     f"{', '.join(SAVABLE)} to save a model (SVM, AdaBoost and LightGBM are evaluation-only)")


def save_model(directory: str | Path, pipe, *, target: str, kind: str, operating_points: dict[str, dict[str, Any]],
               training_summary: dict[str, Any], provenance: dict[str, Any], overwrite: bool = False,
               X_train=None, extra: dict[str, Any] | None = None) -> Path:
    """Write the fitted pipeline to ``directory`` (model.json + arrays.npz).

    ``X_train`` (the training features) adds the mean of what the estimator sees, the reference
    point for per-case feature contributions."""
    from sklearn.utils.validation import check_is_fitted

    directory = Path(directory)
    if (directory / "model.json").exists() and not overwrite:
        raise InputError(f"{directory}: a saved model already exists (choose another folder or pass overwrite)")
    check_is_fitted(pipe)
    arrays: dict[str, np.ndarray] = {}
    steps = [_export_step(i, name, step, arrays) for i, (name, step) in enumerate(pipe.steps)]
    first = pipe.steps[0][1]
    if X_train is not None:
        inner = pipe[:-1].transform(X_train)
        arrays["input_mean"] = np.asarray(inner, dtype=float).mean(axis=0)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "target": target, "kind": kind,
            "task": "regression" if steps[-1]["type"] == "forest_regressor" else "classification",
            "feature_columns": [str(c) for c in first.feature_names_in_], "steps": steps,
            "operating_points": operating_points, "training_summary": training_summary,
            "provenance": provenance, **(extra or {})}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    meta["arrays_sha256"] = hashlib.sha256(payload).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "arrays.npz") as tmp:
        Path(tmp).write_bytes(payload)
    write_json(directory / "model.json", meta)
    return directory


# --------------------------------------------------------------------------------------- load
class SavedModel:
    """A loaded artefact; ``predict(frame)`` -> probability of response (or RCB for regressors)."""

    def __init__(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], path: Path | None = None):
        self.meta, self.arrays, self.path = meta, arrays, path

    @property
    def feature_columns(self) -> list[str]:
        return list(self.meta["feature_columns"])

    @property
    def operating_points(self) -> dict[str, dict[str, Any]]:
        return dict(self.meta.get("operating_points", {}))

    def check_schema(self, frame) -> None:
        missing = [c for c in self.feature_columns if c not in frame.columns]
        if missing:
            where = f"model {self.path}" if self.path else "the model"
            raise InputError(f"the case lacks {len(missing)} feature(s) that {where} needs: "
                             f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")

    def transform(self, frame, upto: int | None = None):
        """Apply the preprocessing steps; returns (matrix, column names) seen by the estimator."""
        import pandas as pd

        self.check_schema(frame)
        X = frame.loc[:, self.feature_columns]
        steps = self.meta["steps"][:-1] if upto is None else self.meta["steps"][:upto]
        for i, st in enumerate(steps):
            key, t = f"s{i}", st["type"]
            if t == "encode":
                out = {}
                for c in st["columns"]:
                    if c in st["levels"]:
                        s = X[c].astype(object)
                        for lv in st["levels"][c][1:]:
                            out[f"{c}={lv}"] = np.where(s.isna(), np.nan, (s.astype(str) == lv).astype(float))
                    else:
                        out[c] = pd.to_numeric(X[c], errors="coerce").astype(float).to_numpy()
                X = pd.DataFrame(out, columns=st["columns_out"], index=X.index)
            elif t == "impute":
                a = X.loc[:, st["columns"]].to_numpy(dtype=float).copy()
                med = np.broadcast_to(self.arrays[f"{key}_median"], a.shape)
                bad = ~np.isfinite(a)
                a[bad] = med[bad]
                X = pd.DataFrame(a, columns=st["columns"], index=X.index)
            elif t == "select":
                X = X.loc[:, st["columns_out"]]
            elif t == "zscore":
                a = (X.loc[:, st["columns"]].to_numpy(dtype=float) - self.arrays[f"{key}_mean"]) / self.arrays[f"{key}_scale"]
                X = pd.DataFrame(a, columns=st["columns"], index=X.index)
            elif t == "pca":
                a = (X.loc[:, st["columns"]].to_numpy(dtype=float) - self.arrays[f"{key}_mean"]) @ self.arrays[f"{key}_components"].T
                X = pd.DataFrame(a, columns=st["columns_out"], index=X.index)
            else:
                raise InputError(f"{self.path}: unknown step type {t!r} (model written by a newer version?)")
        return X

    def _predict_raw(self, a: np.ndarray) -> np.ndarray:
        st = self.meta["steps"][-1]
        key = f"s{len(self.meta['steps']) - 1}"
        A = self.arrays
        t = st["type"]
        if t == "logistic":
            return sigmoid(A[f"{key}_intercept"][0] + a @ A[f"{key}_coef"])
        if t == "naive_bayes":
            theta, var, prior = A[f"{key}_theta"], A[f"{key}_var"], A[f"{key}_prior"]
            jll = np.log(prior)[None, :] - 0.5 * np.sum(np.log(2 * np.pi * var), axis=1)[None, :] \
                - 0.5 * np.sum((a[:, None, :] - theta[None]) ** 2 / var[None], axis=2)
            jll -= jll.max(axis=1, keepdims=True)
            e = np.exp(jll)
            return e[:, 1] / e.sum(axis=1)
        if t == "knn":
            fx, fy, k = A[f"{key}_X"], A[f"{key}_y"], st["k"]
            d = np.sum(np.abs(a[:, None, :] - fx[None]) ** st["p"], axis=2) ** (1.0 / st["p"])
            idx = np.argsort(d, axis=1, kind="stable")[:, :k]
            if st["weights"] == "uniform":
                return fy[idx].mean(axis=1)
            dd = np.take_along_axis(d, idx, axis=1)
            with np.errstate(divide="ignore"):
                w = 1.0 / dd
            zero = ~np.isfinite(w)
            w = np.where(zero.any(axis=1, keepdims=True), zero.astype(float), w)
            return (w * fy[idx]).sum(axis=1) / w.sum(axis=1)
        if t == "mlp":
            h = a
            act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "logistic": sigmoid,
                   "identity": lambda z: z}[st["activation"]]
            for j in range(st["layers"]):
                h = h @ A[f"{key}_W{j}"] + A[f"{key}_b{j}"]
                if j < st["layers"] - 1:
                    h = act(h)
            return sigmoid(h[:, 0])
        if t in ("forest", "forest_regressor", "gbm"):
            leaf_vals = self._tree_values(key, a)  # (n_samples, n_trees)
            if t == "gbm":
                return sigmoid(st["init_raw"] + st["learning_rate"] * leaf_vals.sum(axis=1))
            return leaf_vals.mean(axis=1)
        raise InputError(f"{self.path}: unknown estimator type {t!r}")

    def _tree_values(self, key: str, a: np.ndarray) -> np.ndarray:
        A = self.arrays
        left, right, feat, thr, val = (A[f"{key}_{n}"] for n in ("left", "right", "feature", "threshold", "value"))
        x32 = a.astype(np.float32).astype(np.float64)  # scikit-learn trees compare float32 inputs
        node = np.broadcast_to(A[f"{key}_roots"], (a.shape[0], len(A[f"{key}_roots"]))).copy()
        rows = np.arange(a.shape[0])[:, None]
        while True:
            inner = left[node] >= 0
            if not inner.any():
                break
            f = np.where(inner, feat[node], 0)
            go_left = x32[np.broadcast_to(rows, node.shape), f] <= thr[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        return val[node]

    def predict(self, frame) -> np.ndarray:
        return self.predict_from_matrix(self.transform(frame).to_numpy(dtype=float))

    def predict_from_matrix(self, a: np.ndarray) -> np.ndarray:
        """The estimator's output for the matrix it sees; a NaN or infinite value (a model whose
        numbers overflow) is refused, never returned as a probability."""
        p = self._predict_raw(np.asarray(a, dtype=float))
        bad = ~np.isfinite(p)
        if bad.any():
            raise ModelFileError(f"{self.path}: the model gives a non-finite prediction for {int(bad.sum())} of "
                                 f"{len(p)} case(s); its arrays are unusable (retrain it)")
        return p


def load_model(directory: str | Path) -> SavedModel:
    """Read and check a model folder; any damage or edit ends in ``ModelFileError`` naming the file."""
    directory = Path(directory)
    meta_path, arr_path = directory / "model.json", directory / "arrays.npz"
    for p in (meta_path, arr_path):
        if not p.is_file():
            raise InputError(f"{p}: missing (not a saved NACResponse model folder)")
    try:
        meta = read_json(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{meta_path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelFileError(f"{meta_path}: the model description must be a JSON object, found {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise InputError(f"{meta_path}: not a NACResponse model (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{meta_path}: 'format_version' must be an integer, found {version!r}")
    if version > FORMAT_VERSION:
        raise InputError(f"{meta_path}: model format version {meta['format_version']} is newer than this "
                         f"software supports ({FORMAT_VERSION}); update NACResponse")
    if version < FORMAT_VERSION:
        raise ModelFileError(f"{meta_path}: model format version {version} predates the SHA-256 of its arrays "
                             f"(format {FORMAT_VERSION}); retrain the model")
    payload = arr_path.read_bytes()
    recorded = meta.get("arrays_sha256")
    if not isinstance(recorded, str):
        raise ModelFileError(f"{meta_path}: no 'arrays_sha256' (saved by an older version, or edited); "
                             "retrain the model")
    if hashlib.sha256(payload).hexdigest() != recorded:
        raise ModelFileError(f"{arr_path}: SHA-256 does not match the one recorded in {meta_path.name} "
                             "(the arrays were changed or damaged)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{arr_path}: unreadable model arrays ({exc})") from exc
    check_model(meta, arrays, meta_path, arr_path)
    return SavedModel(meta, arrays, directory)
