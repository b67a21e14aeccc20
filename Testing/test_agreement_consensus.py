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


def _cohort(*segmentations):
    from NACResponseLib.study.model import Cohort, Patient, Timepoint

    tp = Timepoint("pre", segmentations=list(segmentations))
    return Cohort({"P1": Patient("P1", timepoints={"pre": tp})})


def test_segmentation_sets_choose_by_method_priority_not_row_order():
    from NACResponseLib.study.model import METHOD_PRIORITY, Segmentation

    assert METHOD_PRIORITY.index("consensus") < METHOD_PRIORITY.index("manual") < METHOD_PRIORITY.index("monai")
    ai = Segmentation("r1_monai.nii.gz", "R1", "monai")
    manual = Segmentation("r1_manual.nii.gz", "R1", "manual")
    ftv = Segmentation("r1_ftv.nii.gz", "R1", "ftv")
    cons = Segmentation("r1_cons.nii.gz", "R1", "consensus")
    for order in ([ai, manual], [manual, ai]):  # the lower-priority method listed first, then last
        sets = segmentation_sets(_cohort(*order), methods=("monai", "manual"))
        assert sets[("P1", "pre")]["R1"].path == "r1_manual.nii.gz"
        # restricted to the requested methods: monai alone when manual is not asked for
        assert segmentation_sets(_cohort(*order), methods=("monai",))[("P1", "pre")]["R1"].path == "r1_monai.nii.gz"
        # an extra (reader, method) pair competes by the same rule
        sets = segmentation_sets(_cohort(*order), methods=("monai",), extra=[("R1", "manual")])
        assert sets[("P1", "pre")]["R1"].path == "r1_manual.nii.gz"
    sets = segmentation_sets(_cohort(ftv, ai, cons, manual), methods=None)  # every method
    assert sets[("P1", "pre")]["R1"].path == "r1_cons.nii.gz"
    assert segmentation_sets(_cohort(ftv, ai), methods=("manual",)) == {}


def test_segmentation_sets_ambiguous_reader_is_recorded_or_raised_never_resolved():
    from NACResponseLib.study.model import Segmentation

    segs = [Segmentation("r1_a.nii.gz", "R1", "manual"), Segmentation("r2.nii.gz", "R2", "manual"),
            Segmentation("r1_b.nii.gz", "R1", "manual"),
            Segmentation("r1_ai.nii.gz", "R1", "monai")]  # a lower-priority method is no way out
    with pytest.raises(InputError, match=r"P1.*r1_a\.nii\.gz, r1_b\.nii\.gz"):
        segmentation_sets(_cohort(*segs), methods=("manual", "monai"))
    failed: dict[str, str] = {}
    sets = segmentation_sets(_cohort(*segs), methods=("manual", "monai"), failed=failed)
    assert set(sets[("P1", "pre")]) == {"R2"}
    assert list(failed) == ["P1/pre R1"] and "r1_a.nii.gz" in failed["P1/pre R1"] \
        and "r1_b.nii.gz" in failed["P1/pre R1"]
    # the same two files under different methods are not ambiguous: the priority decides
    segs[2] = Segmentation("r1_b.nii.gz", "R1", "consensus")
    assert segmentation_sets(_cohort(*segs), methods=None, failed=failed)[("P1", "pre")]["R1"].path == "r1_b.nii.gz"


def test_run_agreement_records_an_ambiguous_reader_and_goes_on(copy_study):
    from NACResponseLib.readers.cohort import run_agreement

    tp = copy_study.cohort["P001"].timepoint("pre")
    r1 = tp.segmentations_by("R1", "manual")[0]
    r2 = tp.segmentations_by("R2", "manual")[0]
    assert "R1__manual" in r1.path
    import shutil

    second = r1.path.replace("R1__manual", "R1__manual_again")
    shutil.copyfile(copy_study.path(r2.path), copy_study.path(second))
    copy_study.add_manifest_rows([{"patient_id": "P001", "timepoint": "pre", "kind": "segmentation",
                                   "path": second, "reader": "R1", "method": "manual", "label": r2.label,
                                   "reference": r1.reference}])  # a second manual file for R1
    res = run_agreement(copy_study, readers=["R1", "R2"], timepoints=["pre"], progress_mode="none")
    assert list(res.failed) == ["P001/pre R1"]
    assert r1.path in res.failed["P001/pre R1"] and second in res.failed["P001/pre R1"]
    table = res.outputs["table"]
    assert "P001" not in set(table["patient_id"]) and (table["error"] == "").all() and res.done == len(table) > 0
