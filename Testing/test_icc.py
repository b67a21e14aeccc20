"""ICC: every form, F, df, p and CI against pingouin.intraclass_corr and Shrout & Fleiss (1979)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from NACResponseLib.errors import InputError
from NACResponseLib.readers.icc import (
    ICC_FORMS,
    PINGOUIN_LABELS,
    icc_arrays,
    icc_table,
    normalise_form,
    ratings_from_long,
)

pg = pytest.importorskip("pingouin")


@pytest.fixture(autouse=True)
def _unrounded_pingouin():
    """pingouin rounds CI95 to 2 decimals by default; compare at full precision."""
    old = pg.options.get("round.column.CI95")
    pg.options["round.column.CI95"] = None
    yield
    pg.options["round.column.CI95"] = old


def _pingouin(x: np.ndarray) -> pd.DataFrame:
    n, k = x.shape
    long = pd.DataFrame({"t": np.repeat(np.arange(n), k), "r": np.tile(np.arange(k), n), "v": x.ravel()})
    return pg.intraclass_corr(long, targets="t", raters="r", ratings="v", nan_policy="omit").set_index("Type")


def _assert_matches_pingouin(x3: np.ndarray) -> None:
    res = icc_arrays(x3)
    for fi in range(x3.shape[2]):
        ref = _pingouin(x3[:, :, fi])
        for form in ICC_FORMS:
            row = ref.loc[PINGOUIN_LABELS[form]]
            got = res[form]
            expected = {"icc": row["ICC"], "F": row["F"], "df1": row["df1"], "df2": row["df2"],
                        "pval": row["pval"], "ci_low": row["CI95"][0], "ci_high": row["CI95"][1]}
            for key, value in expected.items():
                assert got[key][fi] == pytest.approx(value, rel=1e-9, abs=1e-9), (form, key, fi)


def _structured(rng, n: int, k: int, n_feat: int) -> np.ndarray:
    """Features from excellent to poor agreement, with reader offsets, scales and huge magnitudes."""
    truth = rng.normal(size=(n, 1, 1))
    noise_sd = np.linspace(0.05, 3.0, n_feat)[None, None, :]
    offset = np.linspace(0, 1.5, k)[None, :, None] * np.linspace(0, 1, n_feat)[None, None, :]
    x = truth + offset + noise_sd * rng.normal(size=(n, k, n_feat))
    x[:, :, -1] = 1e6 + 1e4 * x[:, :, -1]  # large magnitude (e.g. an energy feature)
    x[:, :, 0] = np.round(x[:, :, 0] * 4)  # tied, discrete values
    return x


@pytest.mark.parametrize("k", [2, 3])
def test_random_data_matches_pingouin(k):
    rng = np.random.default_rng(10 + k)
    _assert_matches_pingouin(rng.normal(size=(20, k, 5)))


@pytest.mark.parametrize("k", [2, 3])
def test_structured_data_matches_pingouin(k):
    rng = np.random.default_rng(20 + k)
    _assert_matches_pingouin(_structured(rng, 25, k, 6))


def test_negative_icc_matches_pingouin():
    """Readers disagreeing more than cases differ gives negative ICCs; CI must still match."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 2, 1))
    x[:, 1, 0] = -x[:, 0, 0] + 0.1 * rng.normal(size=12)
    assert icc_arrays(x)["ICC2"]["icc"][0] < 0
    _assert_matches_pingouin(x)


def test_missing_values_use_listwise_deletion_like_pingouin():
    rng = np.random.default_rng(4)
    x = _structured(rng, 18, 3, 4)
    x[2, 1, 0] = np.nan
    x[[5, 7], 0, 2] = np.nan
    res = icc_arrays(x)
    assert list(res["n"]) == [17, 18, 16, 18]
    _assert_matches_pingouin(x)


def test_shrout_fleiss_1979_published_values():
    """Table 2 of Shrout & Fleiss (1979): 6 targets rated by 4 judges."""
    x = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)
    res = icc_arrays(x)
    published = {"ICC1": 0.17, "ICC2": 0.29, "ICC3": 0.71, "ICC1k": 0.44, "ICC2k": 0.62, "ICC3k": 0.91}
    for form, value in published.items():
        assert res[form]["icc"][0] == pytest.approx(value, abs=0.005), form


def test_constant_and_missing_features_give_nan_with_reason():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, 2, 4))
    x[:, :, 1] = 3.25  # constant
    x[:, :, 2] = np.nan  # missing
    x[1:, 0, 3] = np.nan  # one complete case only
    table = icc_table(x, ["ok", "const", "missing", "one"], forms=["ICC2"]).set_index("feature")
    assert np.isfinite(table.loc["ok", "icc"]) and table.loc["ok", "reason"] == ""
    assert np.isnan(table.loc["const", "icc"]) and table.loc["const", "reason"].startswith("constant")
    assert np.isnan(table.loc["missing", "icc"]) and table.loc["missing", "reason"].startswith("missing")
    assert np.isnan(table.loc["one", "icc"]) and "too few" in table.loc["one", "reason"]
    # the defined feature is unaffected by its broken neighbours
    alone = icc_arrays(x[:, :, :1])["ICC2"]["icc"][0]
    assert table.loc["ok", "icc"] == pytest.approx(alone, rel=1e-12)


def test_perfect_agreement_is_one_with_degenerate_ci():
    x = np.random.default_rng(6).normal(size=(8, 3, 1)).repeat(1, axis=2)
    x[:, 1:, 0] = x[:, :1, 0]
    res = icc_arrays(x)
    for form in ICC_FORMS:
        assert res[form]["icc"][0] == pytest.approx(1.0)
        assert res[form]["ci_low"][0] == 1.0 and res[form]["ci_high"][0] == 1.0


def test_vectorised_equals_single_feature_calls():
    rng = np.random.default_rng(7)
    x = _structured(rng, 30, 2, 50)
    many = icc_arrays(x)
    for fi in (0, 17, 49):
        one = icc_arrays(x[:, :, fi])
        for form in ICC_FORMS:
            assert many[form]["ci_low"][fi] == pytest.approx(one[form]["ci_low"][0], rel=1e-12)


def test_forms_and_inputs_are_validated():
    assert normalise_form("ICC(2,1)") == "ICC2"
    assert normalise_form("icc(a,k)") == "ICC2k"
    assert normalise_form("ICC3k") == "ICC3k"
    with pytest.raises(InputError, match="unknown ICC form"):
        normalise_form("ICC4")
    with pytest.raises(InputError, match="at least 2 readers"):
        icc_arrays(np.zeros((5, 1, 3)))


def test_ratings_from_long_pivots_and_fills_missing():
    frame = pd.DataFrame({"case": ["a", "a", "b", "b", "c"], "reader": ["R1", "R2", "R1", "R2", "R1"],
                          "f1": [1.0, 2.0, 3.0, 4.0, 5.0]})
    x, targets, raters = ratings_from_long(frame, targets="case", raters="reader", features=["f1"])
    assert targets == ["a", "b", "c"] and raters == ["R1", "R2"]
    assert x[1, 1, 0] == 4.0 and np.isnan(x[2, 1, 0])
    with pytest.raises(InputError, match="more than one row"):
        ratings_from_long(pd.concat([frame, frame.iloc[:1]]), targets="case", raters="reader", features=["f1"])
