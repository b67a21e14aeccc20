"""PCA for deep features, fitted on training rows only and stored as plain arrays.

2048 ResNet features on tens of patients would swamp any classifier, so they are projected to
128 components or to the fewest components explaining >= 95 % of the variance (configurable).
The projection is learnt from the training rows only (fitting on all rows would leak the test
cases into the model) and saved with the model as arrays (``.npz``, no pickle), so prediction
reuses exactly the same projection.  The decomposition is ``sklearn.decomposition.PCA`` (full
SVD, centred, no whitening); this class adds the optional scaling, the variance-fraction rule and
the array storage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError


class DeepPCA:
    """``n_components``: an int (capped at min(rows, features)), or a float in (0, 1) meaning
    "the fewest components whose cumulative explained variance reaches this fraction"."""

    def __init__(self, n_components: int | float = 128, *, scale: bool = False):
        self.n_components = n_components
        self.scale = scale

    # scikit-learn estimator protocol ------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:  # noqa: ARG002
        return {"n_components": self.n_components, "scale": self.scale}

    def set_params(self, **params) -> DeepPCA:
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, X, y=None) -> DeepPCA:  # noqa: ARG002
        """Fit on the rows given; pass only the training rows (``X[train_index]``)."""
        X = self._check(X, fitting=True)
        self.mean_ = X.mean(axis=0)
        centred = X - self.mean_
        self.scale_ = np.ones(X.shape[1])
        if self.scale:
            sd = centred.std(axis=0, ddof=1) if X.shape[0] > 1 else np.ones(X.shape[1])
            self.scale_ = np.where(sd > 0, sd, 1.0)
            centred = centred / self.scale_
        from sklearn.decomposition import PCA

        full = PCA(svd_solver="full").fit(centred)
        variance = full.explained_variance_
        total = variance.sum()
        ratio = variance / total if total > 0 else np.zeros_like(variance)
        k = self._n_keep(ratio)
        self.components_ = full.components_[:k]
        self.explained_variance_ = variance[:k]
        self.explained_variance_ratio_ = ratio[:k]
        self.n_components_ = k
        self.n_features_in_ = X.shape[1]
        self.n_samples_fit_ = X.shape[0]
        return self

    def transform(self, X) -> np.ndarray:
        self._check_fitted()
        X = self._check(X, fitting=False)
        if X.shape[1] != self.n_features_in_:
            raise InputError(f"PCA was fitted on {self.n_features_in_} features, got {X.shape[1]}")
        return ((X - self.mean_) / self.scale_) @ self.components_.T

    def fit_transform(self, X, y=None) -> np.ndarray:
        return self.fit(X, y).transform(X)

    # storage ------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"mean": self.mean_, "scale": self.scale_, "components": self.components_,
                "explained_variance": self.explained_variance_,
                "explained_variance_ratio": self.explained_variance_ratio_,
                "n_samples_fit": np.array(self.n_samples_fit_),
                "n_components_param": np.array(float(self.n_components)), "scale_flag": np.array(self.scale)}

    @classmethod
    def from_arrays(cls, arrays) -> DeepPCA:
        try:
            param = float(arrays["n_components_param"])
            pca = cls(int(param) if param >= 1 else param, scale=bool(arrays["scale_flag"]))
            pca.mean_ = np.asarray(arrays["mean"], dtype=np.float64)
            pca.scale_ = np.asarray(arrays["scale"], dtype=np.float64)
            pca.components_ = np.asarray(arrays["components"], dtype=np.float64)
            pca.explained_variance_ = np.asarray(arrays["explained_variance"], dtype=np.float64)
            pca.explained_variance_ratio_ = np.asarray(arrays["explained_variance_ratio"], dtype=np.float64)
            pca.n_samples_fit_ = int(arrays["n_samples_fit"])
        except KeyError as exc:
            raise InputError(f"stored PCA is missing array {exc}") from None
        pca.n_components_ = pca.components_.shape[0]
        pca.n_features_in_ = pca.components_.shape[1]
        return pca

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **self.to_arrays())
        return path

    @classmethod
    def load(cls, path: str | Path) -> DeepPCA:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: PCA file not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls.from_arrays({k: data[k] for k in data.files})
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: not a stored PCA ({exc})") from None

    # helpers ------------------------------------------------------------------------------
    def _n_keep(self, ratio: np.ndarray) -> int:
        n = self.n_components
        if isinstance(n, float) and 0 < n < 1:
            k = int(np.searchsorted(np.cumsum(ratio), n - 1e-12) + 1)
            return max(1, min(k, len(ratio)))
        if isinstance(n, bool) or int(n) != n or int(n) < 1:
            raise ValueError(f"n_components must be a positive int or a fraction in (0, 1), got {n!r}")
        return min(int(n), len(ratio))

    def _check(self, X, fitting: bool) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise InputError(f"PCA needs a 2D table (rows x features), got shape {X.shape}")
        if fitting and X.shape[0] < 2:
            raise InputError(f"PCA needs at least 2 training rows, got {X.shape[0]}")
        if not np.all(np.isfinite(X)):
            bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
            raise InputError(f"PCA input has missing (NaN) values in rows {bad[:10].tolist()}; drop or impute them")
        return X

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise InputError("PCA is not fitted yet; call fit() on the training rows first")
