"""DeLong tests against pROC's published values on its aSAH data and a naive O(n^2) implementation.

aSAH: 113 patients with aneurysmal subarachnoid haemorrhage (Turck N et al., Intensive Care Med
2010;36:107-15), distributed with pROC (Robin X et al., BMC Bioinformatics 2011;12:77).  Rows below
are (outcome G=good/P=poor, wfns, s100b, ndka) in pROC's row order; the expected values are those
asserted by pROC's own test suite (tests/testthat): roc.test(..., method="delong").
"""

import math

import numpy as np
import pytest

from NACResponseLib.modelling.delong import auc_ci, delong_components, delong_paired, delong_unpaired

ASAH = """
G,1,0.13,3.01 G,1,0.14,8.54 G,1,0.1,8.09 G,1,0.04,10.42 P,3,0.13,17.4
P,2,0.1,12.75 G,5,0.47,6.0 P,4,0.16,13.2 G,1,0.18,15.54 G,2,0.1,6.01
P,5,0.12,15.96 G,2,0.1,17.86 P,5,0.44,5.18 P,5,0.71,8.9 G,1,0.04,13.41
G,2,0.08,20.75 P,5,0.49,11.6 G,2,0.04,16.11 P,2,0.07,32.37 P,5,0.33,54.82
P,2,0.09,32.41 G,1,0.09,49.94 P,1,0.07,40.34 G,1,0.11,9.47 G,1,0.07,6.29
G,2,0.17,12.53 G,1,0.07,6.54 G,2,0.11,6.3 G,1,0.13,80.3 G,1,0.19,12.8
G,3,0.05,9.8 G,4,0.16,9.81 P,2,0.41,9.85 G,1,0.14,18.21 G,4,0.34,5.03
P,5,0.35,14.04 P,4,0.48,21.93 G,1,0.09,8.02 P,4,0.96,7.42 P,2,0.25,8.38
G,5,0.5,6.59 G,5,0.46,9.63 G,1,0.16,13.12 G,1,0.07,7.96 G,2,0.43,14.34
G,4,0.45,41.43 G,1,0.11,7.63 G,1,0.08,7.06 G,2,0.09,12.59 P,5,0.86,13.56
P,5,0.52,3.87 G,2,0.08,9.44 G,1,0.06,7.66 G,2,0.13,12.98 P,5,2.07,419.19
G,1,0.1,27.19 G,2,0.14,22.27 G,2,0.15,9.95 P,2,0.07,21.22 G,1,0.06,11.73
P,5,0.77,10.4 G,1,0.05,58.83 G,1,0.09,6.39 P,2,0.3,11.09 P,5,0.03,12.22
P,2,0.09,13.67 G,1,0.04,17.21 P,4,0.23,22.63 P,5,0.7,12.9 G,2,0.09,9.7
P,4,0.27,21.57 P,4,0.71,8.23 P,1,0.08,72.57 P,4,0.26,15.54 G,1,0.08,10.51
G,2,0.16,10.6 G,1,0.09,14.57 P,4,0.13,5.19 P,2,0.1,9.63 G,1,0.08,4.61
P,2,0.11,21.48 G,3,0.33,17.3 G,2,0.11,12.71 G,4,0.28,9.44 G,2,0.07,11.07
G,1,0.1,19.46 G,4,0.32,10.83 P,5,0.22,5.37 G,1,0.07,11.97 G,1,0.05,7.75
G,5,0.24,9.83 G,4,0.38,10.55 G,2,0.1,28.49 G,2,0.15,8.53 G,1,0.08,12.57
G,1,0.14,12.9 G,1,0.1,46.83 G,3,0.07,11.68 G,1,0.04,12.67 G,2,0.19,9.01
P,5,0.56,9.57 P,2,0.14,34.06 P,2,0.58,11.72 P,5,0.32,14.26 P,5,0.82,47.61
P,5,0.74,11.67 G,2,0.15,24.58 G,4,0.47,10.33 G,4,0.17,13.87 P,5,0.44,15.89
G,1,0.15,22.43 G,1,0.5,6.79 G,1,0.48,13.45
"""
ROWS = [r.split(",") for r in ASAH.split()]
Y = np.array([1 if r[0] == "P" else 0 for r in ROWS])  # case = poor outcome (pROC's default levels)
MARKER = {name: np.array([float(r[k]) for r in ROWS]) for k, name in enumerate(("wfns", "s100b", "ndka"), start=1)}


def test_asah_shape():
    assert len(Y) == 113 and Y.sum() == 41


@pytest.mark.parametrize("a,b,z,p", [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054),
])
def test_paired_delong_matches_proc(a, b, z, p):
    r = delong_paired(Y, MARKER[a], MARKER[b])
    assert r["z"] == pytest.approx(z, rel=1e-9)
    assert r["p"] == pytest.approx(p, rel=1e-9)
    assert delong_paired(Y, MARKER[b], MARKER[a])["z"] == pytest.approx(-z, rel=1e-9)


def test_paired_delong_ci_matches_proc():
    r = delong_paired(Y, MARKER["wfns"], MARKER["s100b"])
    assert r["ci_low"] == pytest.approx(0.0104061769564846, rel=1e-8)
    assert r["ci_high"] == pytest.approx(0.174214419249478, rel=1e-8)


@pytest.mark.parametrize("a,b,d,p", [
    ("wfns", "s100b", 1.43490640926908, 0.152825378808796),
    ("wfns", "ndka", 3.10125096778969, 0.00220950791756457),
])
def test_unpaired_delong_matches_proc(a, b, d, p):
    r = delong_unpaired(Y, MARKER[a], Y, MARKER[b])
    assert r["d"] == pytest.approx(d, rel=1e-9)
    assert r["p"] == pytest.approx(p, rel=1e-9)


def test_auc_and_variance_match_proc():
    assert auc_ci(Y, MARKER["wfns"])["auc"] == pytest.approx(0.823678861788618, rel=1e-12)
    assert auc_ci(Y, MARKER["ndka"])["auc"] == pytest.approx(0.611957994579946, rel=1e-12)
    assert auc_ci(Y, MARKER["s100b"])["auc"] == pytest.approx(0.7313686, abs=1e-7)
    assert auc_ci(Y, MARKER["wfns"])["var"] == pytest.approx(0.00146991470882363, rel=1e-9)
    assert auc_ci(Y, MARKER["ndka"])["var"] == pytest.approx(0.0031908105493913, rel=1e-9)
    assert auc_ci(Y, MARKER["s100b"])["var"] == pytest.approx(0.00266868245717244, rel=1e-9)
    ci = auc_ci(Y, MARKER["ndka"])
    assert (ci["ci_low"], ci["ci_high"]) == pytest.approx((0.501244999271703, 0.722670989888189), rel=1e-9)


def _naive_delong(y, s1, s2):
    """DeLong 1988 by explicit O(n^2) placement loops."""
    def psi(x, z):
        return 1.0 if x > z else (0.5 if x == z else 0.0)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    comps = []
    for s in (s1, s2):
        v10 = np.array([np.mean([psi(s[i], s[j]) for j in neg]) for i in pos])
        v01 = np.array([np.mean([psi(s[i], s[j]) for i in pos]) for j in neg])
        comps.append((v10, v01))
    s10 = np.cov([comps[0][0], comps[1][0]])
    s01 = np.cov([comps[0][1], comps[1][1]])
    S = s10 / len(pos) + s01 / len(neg)
    diff = comps[0][0].mean() - comps[1][0].mean()
    return diff / math.sqrt(S[0, 0] + S[1, 1] - 2 * S[0, 1]), S


def test_fast_delong_equals_naive_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 70)
    s1 = np.round(y + rng.normal(0, 1, 70), 1)  # rounding creates ties
    s2 = np.round(0.5 * s1 + rng.normal(0, 1, 70), 1)
    z_naive, S = _naive_delong(y, s1, s2)
    assert delong_paired(y, s1, s2)["z"] == pytest.approx(z_naive, rel=1e-10)
    aucs, v10, v01 = delong_components(y, np.vstack([s1, s2]))
    from sklearn.metrics import roc_auc_score
    assert aucs[0] == pytest.approx(roc_auc_score(y, s1), rel=1e-12)


def test_identical_scores_give_p_one():
    r = delong_paired(Y, MARKER["wfns"], MARKER["wfns"])
    assert r["z"] == 0 and r["p"] == 1.0


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="both classes"):
        delong_paired(np.zeros(5), np.arange(5), np.arange(5))
    with pytest.raises(ValueError, match="NaN"):
        auc_ci(np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.3, 0.4]))
