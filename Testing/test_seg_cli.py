"""The ``nacresponse seg`` commands on a small synthetic study (no training: forced-output bundles)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import SimpleITK as sitk
from test_seg import _bundle

from NACResponseLib.cli import main
from NACResponseLib.study.store import StudyStore

requires_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                    reason="torch is not installed (Python 3.12 here: no CPU wheel, the deep extra is left out)")


def test_seg_measure_and_ftv_on_study(copy_study, capsys):
    root = str(copy_study.root)
    assert main(["--progress", "none", "seg", "measure", root, "--readers", "GT"]) == 0
    store = StudyStore(root)
    table = store.read_table("tumour_measurements")
    assert set(table["reader"]) == {"GT"} and (table["status"] == "done").all()
    pre_rows = table[table["timepoint"] == "pre"]
    assert (pre_rows["recist"] == "baseline").all() and (pre_rows["volume_ml"] > 0).all()
    # Volumes agree with a direct voxel count of the files.
    row = table.iloc[0]
    mask = sitk.ReadImage(str(store.path(row["path"])))
    expected = (sitk.GetArrayFromImage(mask) > 0).sum() * np.prod(mask.GetSpacing()) / 1000
    assert row["volume_ml"] == pytest.approx(float(expected))
    assert store.table_provenance("tumour_measurements")["step"] == "seg measure"

    code = main(["--progress", "none", "seg", "ftv", root, "--roi-reader", "R1", "--patients", "P001,P002"])
    assert code == 0
    store = StudyStore(root)
    ftv = store.read_table("ftv")
    assert set(ftv["patient_id"]) == {"P001", "P002"} and set(ftv["status"]) <= {"done", "empty"}
    done = ftv[ftv["status"] == "done"]
    assert len(done) and (done["ftv_cm3"] > 0).all()
    segs = [s for p in ("P001", "P002") for t in store.cohort[p].timepoints.values() for s in t.segmentations_by("ftv")]
    assert len(segs) == len(done) and all(s.method == "ftv" for s in segs)
    assert store.path(segs[0].path.replace(".nii.gz", "_pe.nii.gz")).is_file()
    # At baseline the FTV mask overlaps the true (enhancing) tumour well.
    from NACResponseLib.segmentation.training import dice

    tp = store.cohort["P001"].timepoints["pre"]
    ftv_mask = sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(tp.segmentations_by("ftv")[0].path)))) > 0
    gt = sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(tp.segmentations_by("GT")[0].path)))) > 0
    assert dice(ftv_mask, gt) > 0.7


def test_seg_measure_2d_outlines_and_duplicate_series(copy_study, capsys):
    """Ultrasound outlines (reader GT_US) are measured as areas in mm2, counted here from the file;
    a reader with two files for one timepoint is one failed row naming both, not two rows."""
    import shutil

    root = copy_study.root
    tp = copy_study.cohort["P001"].timepoints["pre"]
    seg = tp.segmentations_by("R1")[0]
    copy = seg.path.replace(".nii.gz", "_copy.nii.gz")
    shutil.copy(copy_study.path(seg.path), copy_study.path(copy))
    with open(copy_study.manifest_path, "a", encoding="utf-8") as fh:
        fh.write(f"P001,pre,segmentation,{copy},,,,,,,,R1,manual,1,dce_early,,,\n")
    assert main(["--progress", "none", "seg", "measure", str(root), "--readers", "GT_US,R1"]) == 1
    assert "area_mm2" in capsys.readouterr().out
    table = StudyStore(root).read_table("tumour_measurements")
    us = table[table["reader"] == "GT_US"]
    assert len(us) and (us["status"] == "done").all() and us["volume_ml"].isna().all()
    for row in us.itertuples():
        mask = sitk.ReadImage(str(copy_study.path(row.path)))
        assert mask.GetDimension() == 2
        assert row.area_mm2 == pytest.approx((sitk.GetArrayFromImage(mask) > 0).sum() * np.prod(mask.GetSpacing()))
    dup = table[(table["patient_id"] == "P001") & (table["timepoint"] == "pre") & (table["reader"] == "R1")]
    assert dup["status"].tolist() == ["failed"]
    assert seg.path in dup["message"].item() and copy in dup["message"].item()
    r1 = table[(table["reader"] == "R1") & (table["status"] == "done")]
    assert (r1["volume_ml"] > 0).all() and r1["area_mm2"].isna().all()


@requires_torch
def test_seg_predict_cli_adds_monai_segmentations_and_reports_empty(copy_study, tmp_path, capsys):
    root = str(copy_study.root)
    full = _bundle(tmp_path / "full", bias=20.0)
    code = main(["--progress", "none", "seg", "predict", root, "--model", str(full), "--patients", "P001",
                 "--timepoints", "pre", "--threads", "1"])
    assert code == 0
    store = StudyStore(root)
    segs = store.cohort["P001"].timepoints["pre"].segmentations_by(reader="monai")
    assert len(segs) == 1 and segs[0].method == "monai"
    assert segs[0].path == "segmentations/P001/pre/monai__monai.nii.gz"
    mask = sitk.ReadImage(str(store.path(segs[0].path)))
    early = sitk.ReadImage(str(store.path(store.cohort["P001"].timepoints["pre"].image("dce_early").path)))
    assert mask.GetSize() == early.GetSize() and mask.GetOrigin() == early.GetOrigin()
    prov = json.loads(store.path(segs[0].path + ".provenance.json").read_text())
    assert prov["model"]["weights_sha256"] and prov["step"] == "seg predict"

    empty = _bundle(tmp_path / "empty", bias=-20.0)
    code = main(["--progress", "none", "seg", "predict", root, "--model", str(empty), "--reader", "monai2",
                 "--patients", "P002", "--timepoints", "pre", "--threads", "1"])
    assert code == 1  # reported, not crashed
    assert "EMPTY P002/pre" in capsys.readouterr().err
    table = StudyStore(root).read_table("seg_predictions")
    assert set(table["status"]) == {"done", "empty"}

    # A corrupted model is a clear input error (exit 2) naming the problem.
    weights = full / "models" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert main(["--progress", "none", "seg", "predict", root, "--model", str(full)]) == 2
    assert "SHA-256 mismatch" in capsys.readouterr().err
