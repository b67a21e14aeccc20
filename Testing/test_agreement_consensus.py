"""Consensus (majority vote, STAPLE) and cohort-level pairwise agreement on the synthetic study."""

from __future__ import annotations

import numpy as np
import pytest

from NACResponseLib.errors import InputError
from NACResponseLib.readers.agreement import (
    AGREEMENT_COLUMNS,
    pairwise_agreement,
    segmentation_sets,
    summarise_pairs,
)
from NACResponseLib.readers.consensus import build_consensus, majority_vote, staple


def test_majority_vote_known_answers():
    a = np.array([1, 1, 0, 0, 1], np.uint8)
    b = np.array([1, 0, 1, 0, 1], np.uint8)
    c = np.array([0, 1, 1, 0, 1], np.uint8)
    assert majority_vote([a, b, c]).tolist() == [1, 1, 1, 0, 1]
    assert majority_vote([a, b]).tolist() == [1, 0, 0, 0, 1]  # two readers: intersection
    assert majority_vote([a, b], ties="include").tolist() == [1, 1, 1, 0, 1]  # ... or union
    with pytest.raises(InputError, match="at least 2"):
        majority_vote([a])


def test_staple_recovers_truth_and_rates_readers():
    rng = np.random.default_rng(0)
    truth = np.zeros((20, 20, 20), np.uint8)
    truth[5:15, 5:15, 5:15] = 1
    good1, good2 = truth.copy(), truth.copy()
    good1[5, 5:8, 5:8] = 0
    noisy = truth.copy()
    flip = rng.random(truth.shape) < 0.1
    noisy[flip] = 1 - noisy[flip]
    out, rates = staple([good1, good2, noisy])
    assert (out != truth).sum() <= 9  # the one reader's small miss may survive; the noise does not
    assert rates["specificity"][2] < min(rates["specificity"][:2])
    identical, _ = staple([truth, truth])
    assert np.array_equal(identical, truth)


def test_consensus_and_agreement_on_study(copy_study):
    sets = segmentation_sets(copy_study.cohort, ["R1", "R2"])
    pre = {k: v for k, v in sets.items() if k[1] == "pre"}
    res = build_consensus(copy_study, pre, method="staple")
    assert len(res["made"]) == 6 and not res["failed"]
    again = build_consensus(copy_study, pre, method="staple")  # finished work is not recomputed
    assert again["made"] == [] and len(again["skipped"]) == 6
    sets = segmentation_sets(copy_study.cohort, ["R1", "R2"], extra=[("STAPLE", "consensus"), ("GT", "reference")])
    pre = {k: v for k, v in sets.items() if k[1] == "pre"}
    table = pairwise_agreement(copy_study, pre)
    assert list(table.columns) == AGREEMENT_COLUMNS and (table["error"] == "").all()
    assert len(table) == 6 * 6  # 4 "readers" -> 6 pairs per case
    r1r2 = table[(table.reader_a == "R1") & (table.reader_b == "R2")]
    assert r1r2["dice"].between(0.5, 0.99).all() and (r1r2["hd95_mm"] > 0).all()
    assert np.allclose(r1r2["volume_diff_ml"], r1r2["volume_a_ml"] - r1r2["volume_b_ml"])
    summary = summarise_pairs(table)
    assert len(summary) == 6 and {"dice_median", "volume_bias_ml"} <= set(summary.columns)
