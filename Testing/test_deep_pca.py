"""PCA of deep features against scikit-learn, fitted on training rows only, stored as arrays."""

from __future__ import annotations

import numpy as np
import pytest

from NACResponseLib.deep.pca import DeepPCA
from NACResponseLib.errors import InputError


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(40, 5)) * np.array([10, 6, 3, 1, 0.5])
    X = latent @ rng.normal(size=(5, 300)) + 0.05 * rng.normal(size=(40, 300)) + 2.0
    return X


def test_matches_sklearn_on_training_rows(data):
    from sklearn.decomposition import PCA

    train, test = data[:30], data[30:]
    ours = DeepPCA(n_components=4).fit(train)
    ref = PCA(n_components=4, svd_solver="full").fit(train)
    np.testing.assert_allclose(ours.components_, ref.components_, atol=1e-8)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-10)
    np.testing.assert_allclose(ours.transform(test), ref.transform(test), atol=1e-8)


def test_variance_fraction_selects_the_fewest_components(data):
    from sklearn.decomposition import PCA

    full = PCA(svd_solver="full").fit(data[:30])
    cumulative = np.cumsum(full.explained_variance_ratio_)
    for fraction in (0.5, 0.9, 0.95, 0.999):
        expected = int(np.argmax(cumulative >= fraction)) + 1
        pca = DeepPCA(n_components=fraction).fit(data[:30])
        assert pca.n_components_ == expected
        assert pca.explained_variance_ratio_.sum() >= fraction
    # an integer larger than the data allows is capped at min(rows, features)
    assert DeepPCA(n_components=128).fit(data[:30]).n_components_ == 30


def test_projection_depends_on_training_rows_only(data):
    pca = DeepPCA(n_components=3).fit(data[:30])
    before = pca.transform(data[:30])
    altered = data.copy()
    altered[30:] *= -5.0  # test rows change wildly
    again = DeepPCA(n_components=3).fit(altered[:30])
    np.testing.assert_array_equal(again.transform(altered[:30]), before)
    # fitting on all rows would give another projection: the train-only fit is not a no-op
    assert not np.allclose(DeepPCA(n_components=3).fit(altered).components_, pca.components_)


def test_round_trip_through_arrays_and_file(data, tmp_path):
    pca = DeepPCA(n_components=0.95, scale=True).fit(data[:30])
    back = DeepPCA.from_arrays(pca.to_arrays())
    np.testing.assert_array_equal(back.transform(data[30:]), pca.transform(data[30:]))
    path = pca.save(tmp_path / "pca.npz")
    loaded = DeepPCA.load(path)
    np.testing.assert_array_equal(loaded.transform(data[30:]), pca.transform(data[30:]))
    assert loaded.get_params() == {"n_components": 0.95, "scale": True}
    with np.load(path, allow_pickle=False) as f:  # plain arrays, readable without pickle
        assert "components" in f.files


def test_bad_input(data, tmp_path):
    with pytest.raises(InputError, match="not fitted"):
        DeepPCA().transform(data)
    bad = data[:10].copy()
    bad[3, 4] = np.nan
    with pytest.raises(InputError, match="rows \\[3\\]"):
        DeepPCA(2).fit(bad)
    with pytest.raises(InputError, match="fitted on 300 features"):
        DeepPCA(2).fit(data).transform(data[:, :10])
    with pytest.raises(InputError, match="not found"):
        DeepPCA.load(tmp_path / "absent.npz")
    with pytest.raises(ValueError):
        DeepPCA(n_components=0).fit(data)
