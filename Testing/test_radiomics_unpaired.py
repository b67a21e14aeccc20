"""Radiomics never skips a segmentation silently: every pair it cannot extract is a failure row naming why."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from NACResponseLib.radiomics import extract_cohort, plan_rois
from NACResponseLib.study.manifest import read_manifest_rows, write_manifest

PARAMS = {"imageType": {"Original": {}}, "featureClass": {"firstorder": None},
          "setting": {"binWidth": 25, "label": 1}}


def _seg_path(store, pid, reader):
    return store.path(store.cohort[pid].timepoint("pre").segmentations_by(reader=reader)[0].path)


def _plant(store):
    # P001 R1: a mask moved off its image's grid (spacing doubled)
    path = _seg_path(store, "P001", "R1")
    mask = sitk.ReadImage(str(path))
    mask.SetSpacing(tuple(2 * s for s in mask.GetSpacing()))
    sitk.WriteImage(mask, str(path))
    # P002 R2: a 2D mask for a 3D image
    path = _seg_path(store, "P002", "R2")
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    sitk.WriteImage(sitk.GetImageFromArray(array[array.sum(axis=(1, 2)).argmax()]), str(path))
    # P003: an unreadable t2w
    t2w = store.path(store.cohort["P003"].timepoint("pre").image("t2w").path)
    t2w.write_bytes(b"not an image at all" * 10)
    # P003 R2: a mask whose reference image is not in the manifest
    rows = read_manifest_rows(store.manifest_path)
    for r in rows:
        if r["patient_id"] == "P003" and r["timepoint"] == "pre" and r.get("reader") == "R2":
            r["reference"] = "sub"
    write_manifest(rows, store.manifest_path)
    store.refresh()


def test_every_unextractable_pair_has_a_failure_row(copy_study):
    _plant(copy_study)
    select = {"patients": ["P001", "P002", "P003"], "timepoints": ["pre"], "readers": ["R1", "R2"]}
    keys = {(r.patient_id, r.reader, r.image) for r in plan_rois(copy_study, **select)}
    assert ("P001", "R1", "dce_early") in keys  # the off-grid mask keeps its reference pair
    assert ("P002", "R2", "dce_early") in keys  # so does the 2D mask
    assert {("P003", "R1", "t2w"), ("P003", "R2", "sub")} <= keys

    result = extract_cohort(copy_study, PARAMS, mode="serial", progress_mode="none", **select)
    fail = {(r.patient_id, r.reader, r.image): r.error for r in result.failures.itertuples()}
    assert "differ" in fail[("P001", "R1", "dce_early")].lower() or "geometr" in fail[("P001", "R1", "dce_early")]
    assert "2D/3D mix" in fail[("P002", "R2", "dce_early")]
    assert "cannot read image" in fail[("P003", "R1", "t2w")]
    assert "reference image 'sub' is not in the manifest" in fail[("P003", "R2", "sub")]
    # the rest of the cohort is extracted, and every planned pair is either a row or a failure
    done = {(r.patient_id, r.reader, r.image) for r in result.long.itertuples()}
    assert done | set(fail) == keys and not done & set(fail)
    assert ("P001", "R2", "dce_early") in done
    wide = result.wide.set_index(["patient_id", "reader"])
    assert not np.isnan(wide.loc[("P001", "R2"), "pre__dce_early__original_firstorder_Mean"])
