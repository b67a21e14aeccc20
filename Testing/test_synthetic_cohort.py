"""The synthetic cohort generator: seeded, fast, and faithful to its documented ground truth."""

from __future__ import annotations

import json
import math

import numpy as np
import SimpleITK as sitk

from NACResponseLib.demo.synthetic import _clinical, generate_cohort


def test_clinical_effects_follow_published_direction():
    """HER2+ raises and HR+ lowers the odds of pCR (over many simulated patients)."""
    rows = []
    for i in range(4000):
        clin, logit = _clinical(np.random.default_rng(i), f"P{i}", 25.0)
        rows.append((clin["her2"], int(clin["er"] or clin["pr"]), 1 / (1 + math.exp(-logit))))
    arr = np.array(rows)
    her2_pos, her2_neg = arr[arr[:, 0] == 1, 2].mean(), arr[arr[:, 0] == 0, 2].mean()
    hr_pos, hr_neg = arr[arr[:, 1] == 1, 2].mean(), arr[arr[:, 1] == 0, 2].mean()
    assert her2_pos > her2_neg + 0.1
    assert hr_pos < hr_neg - 0.1
    hr_neg_her2_pos = arr[(arr[:, 1] == 0) & (arr[:, 0] == 1), 2].mean()
    hr_pos_her2_neg = arr[(arr[:, 1] == 1) & (arr[:, 0] == 0), 2].mean()
    assert 0.5 < hr_neg_her2_pos < 0.75 and 0.08 < hr_pos_her2_neg < 0.25  # I-SPY2-like rates


def test_cohort_ground_truth_and_determinism(synthetic_source, tmp_path):
    truth = json.loads((synthetic_source / "ground_truth.json").read_text())
    assert len(truth["patients"]) == 6
    for pid, p in truth["patients"].items():
        tps = p["timepoints"]
        pre = sitk.ReadImage(str(synthetic_source / pid / "pre" / "dce_early.nii.gz"))
        adc = sitk.ReadImage(str(synthetic_source / pid / "pre" / "adc.nii.gz"))
        assert adc.GetSpacing()[0] == 2 * pre.GetSpacing()[0]  # DWI/ADC on a coarser grid
        if p["pcr"]:
            assert tps["post"]["tumour_volume_ml"] == 0.0 and tps["post"]["gt_volume_ml"] > 0  # tumour bed
        if p["scales"]["post"] > 1:
            assert tps["post"]["tumour_volume_ml"] >= tps["pre"]["tumour_volume_ml"] * 0.95
        for tp in tps:
            gt = sitk.GetArrayFromImage(sitk.ReadImage(str(synthetic_source / pid / tp / "seg" / "GT__reference.nii.gz")))
            r1 = sitk.GetArrayFromImage(sitk.ReadImage(str(synthetic_source / pid / tp / "seg" / "R1__manual.nii.gz")))
            dice = 2 * np.sum(gt & r1) / (gt.sum() + r1.sum())
            assert gt.any() and 0.5 < dice < 1.0  # readers differ from the truth, but not wildly
    # Same seed -> identical files; the tumour enhances more than fat on the early phase.
    again = generate_cohort(tmp_path / "again", n_patients=1, seed=7)
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(again / "P001" / "pre" / "dce_early.nii.gz")))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(synthetic_source / "P001" / "pre" / "dce_early.nii.gz")))
    np.testing.assert_array_equal(a, b)
    pre = sitk.GetArrayFromImage(sitk.ReadImage(str(again / "P001" / "pre" / "dce_pre.nii.gz"))).astype(float)
    gt = sitk.GetArrayFromImage(sitk.ReadImage(str(again / "P001" / "pre" / "seg" / "GT__reference.nii.gz"))) > 0
    pe = (a[gt].mean() - pre[gt].mean()) / pre[gt].mean()
    assert pe > 0.7  # enhancing tumour: percent enhancement above the I-SPY 70 % threshold


def test_mammograms_for_mc_patients(tmp_path):
    out = generate_cohort(tmp_path / "mc", n_patients=3, seed=1, mc_fraction=1.0)
    truth = json.loads((out / "ground_truth.json").read_text())
    for pid, p in truth["patients"].items():
        lat = p["mc"]["laterality"]
        for tp in ("pre", "post"):
            img = sitk.ReadImage(str(out / pid / tp / f"mg_cc_{lat}.nii.gz"))
            assert img.GetDimension() == 2 and abs(img.GetSpacing()[0] - 0.1) < 1e-6  # NIfTI stores float32
        assert len(p["mc"]["mcs"]["pre"][f"mg_cc_{lat}"]) >= 3
