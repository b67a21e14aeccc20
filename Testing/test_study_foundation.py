"""Foundation: study model, manifest, geometry checks, store, atomic writes, provenance."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import GeometryMismatchError, InputError, ManifestError, MissingTimepointError
from NACResponseLib.geometry import check_same_geometry
from NACResponseLib.imageio import read_image, read_mask, write_image
from NACResponseLib.provenance import collect, sha256_file
from NACResponseLib.study.manifest import read_clinical, read_manifest_rows
from NACResponseLib.study.model import image_key
from NACResponseLib.study.store import StudyStore


def _img(shape=(4, 5, 6), spacing=(1.0, 1.0, 2.0), value=1.0, dtype=np.float32):
    im = sitk.GetImageFromArray(np.full(shape, value, dtype=dtype))
    im.SetSpacing(spacing)
    return im


def test_image_keys():
    assert image_key("dwi", 800.0) == "dwi_b800"
    assert image_key("mg_cc", laterality="L") == "mg_cc_L"
    assert image_key("dce_early") == "dce_early"


def test_geometry_mismatch_names_both_files_and_values():
    a, b = _img(), _img(spacing=(1.0, 1.0, 3.0))
    with pytest.raises(GeometryMismatchError) as err:
        check_same_geometry(a, b, "img.nii.gz", "mask.nii.gz")
    msg = str(err.value)
    assert "img.nii.gz" in msg and "mask.nii.gz" in msg and "spacing" in msg and "(1, 1, 3)" in msg
    c = _img()
    c.SetOrigin((0.0, 0.0, 5.0))
    with pytest.raises(GeometryMismatchError, match="origin"):
        check_same_geometry(a, c, "a", "c")
    with pytest.raises(GeometryMismatchError, match="dimension 3D vs 2D"):
        check_same_geometry(a, sitk.Image(3, 3, sitk.sitkUInt8), "a", "b")
    check_same_geometry(a, _img(value=0.0), "a", "same grid")  # agrees: no error


def test_read_image_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_image(tmp_path / "missing.nii.gz")
    weird = tmp_path / "scan.xyz"
    weird.write_text("x")
    with pytest.raises(InputError, match="unknown image format"):
        read_image(weird)
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(InputError, match="corrupt.nii.gz: cannot read"):
        read_image(corrupt)
    arr = np.ones((3, 4, 5), np.float32)
    arr[1, 2, 3] = np.nan
    nan_path = tmp_path / "nan.nrrd"  # ITK's NIfTI writer turns NaN into 0
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(nan_path))
    with pytest.raises(InputError, match="nan.nrrd: 1 voxels are NaN"):
        read_image(nan_path)


def test_read_mask_errors(tmp_path):
    image = _img()
    empty = tmp_path / "empty.nii.gz"
    write_image(sitk.Cast(_img(value=0), sitk.sitkUInt8), empty)
    with pytest.raises(InputError, match="empty.nii.gz: mask is empty"):
        read_mask(empty)
    two = tmp_path / "label2.nii.gz"
    write_image(sitk.Cast(_img(value=2), sitk.sitkUInt8), two)
    with pytest.raises(InputError, match=r"label 1 absent from mask \(labels present: \[2\]\)"):
        read_mask(two, label=1)
    wrong = tmp_path / "wrong_grid.nii.gz"
    write_image(sitk.Cast(_img(spacing=(2.0, 1.0, 2.0)), sitk.sitkUInt8), wrong)
    with pytest.raises(GeometryMismatchError, match="wrong_grid.nii.gz"):
        read_mask(wrong, reference=image, reference_name="dce.nii.gz")


def test_atomic_write_leaves_no_partial_file(tmp_path):
    from NACResponseLib.atomic import atomic_write_with

    target = tmp_path / "table.parquet"
    target.write_text("old")

    def crash(tmp):
        tmp.write_text("half written")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600) or os.umask(0o022) == 0o077


def _write_manifest(tmp_path, text):
    path = tmp_path / "manifest.csv"
    path.write_text(text)
    return path


def test_manifest_validation_names_row_and_column(tmp_path):
    header = "patient_id,timepoint,kind,path,modality,role\n"
    path = _write_manifest(tmp_path, header + "P1,pre,image,a.nii.gz,MR,dce_early\nP1,week3,image,b.nii.gz,MR,t2w\n")
    with pytest.raises(ManifestError, match=r"manifest.csv:3: column timepoint"):
        read_manifest_rows(path)
    path = _write_manifest(tmp_path, header + "P1,pre,image,a.nii.gz,US,dce_early\n")
    with pytest.raises(ManifestError, match="role 'dce_early' is MR, not US"):
        read_manifest_rows(path)
    path = _write_manifest(tmp_path, "patient_id,timepoint,kind,path,colour\nP1,pre,image,a,red\n")
    with pytest.raises(ManifestError, match="unknown manifest columns"):
        read_manifest_rows(path)
    path = _write_manifest(tmp_path, header + "P1,pre,segmentation,m.nii.gz,,\n")
    with pytest.raises(ManifestError, match="'reader' is a required property"):
        read_manifest_rows(path)


def test_clinical_table_parsing(tmp_path):
    path = tmp_path / "clinical.csv"
    path.write_text("patient_id,er,her2,miller_payne,rcb_class,age\nP1,pos,no,5,0,51\nP2,1,1,,III,NA\n")
    table = read_clinical(path)
    assert table["P1"]["er"] == 1 and table["P1"]["her2"] == 0 and table["P1"]["miller_payne"] == 5
    assert table["P2"]["age"] is None and table["P2"]["rcb_class"] == "III"
    path.write_text("patient_id,miller_payne\nP1,7\n")
    with pytest.raises(ManifestError, match="clinical.csv:2: Miller-Payne grade must be 1..5"):
        read_clinical(path)
    path.write_text("patient_id,pcr\nP1,maybe\n")
    with pytest.raises(ManifestError, match="'pcr' must be 0/1"):
        read_clinical(path)


def test_store_tables_provenance_catalogue(copy_study):
    import pandas as pd

    store = copy_study
    frame = pd.DataFrame({"patient_id": ["P001", "P002"], "value": [1.5, 2.5]})
    prov = collect(step="unit", parameters={"a": 1}, inputs=[store.manifest_path], base=store.root)
    store.write_table("example", frame, prov)
    back = store.read_table("example")
    pd.testing.assert_frame_equal(back, frame)
    recorded = store.table_provenance("example")
    assert recorded["inputs_sha256"]["manifest.csv"] == sha256_file(store.manifest_path)
    assert recorded["versions"]["nacresponse"] and recorded["versions"]["SimpleITK"]
    run = store.start_run("unit", {"x": 1})
    store.finish_run(run, "done", {"n": 2})
    assert store.runs()[-1]["status"] == "done"
    # recorded_run: no run stays 'running', whatever ends it
    from NACResponseLib.errors import CancelledError

    with store.recorded_run("unit") as recorded:
        recorded.finish("done_with_failures", {"n": 1})
    assert store.runs()[-1]["status"] == "done_with_failures"
    for error, status in ((CancelledError("stop"), "cancelled"), (KeyboardInterrupt(), "cancelled"),
                          (ValueError("bad value"), "failed")):
        with pytest.raises(type(error)), store.recorded_run("unit"):
            raise error
        assert store.runs()[-1]["status"] == status and store.runs()[-1]["finished"]
    assert "ValueError: bad value" in store.runs()[-1]["summary"]
    store.audit("opened", actor="R1", target="P001")
    assert store.audit_log()[-1]["actor"] == "R1"
    with pytest.raises(InputError, match="result table 'nothing' not found"):
        store.read_table("nothing")
    with pytest.raises(InputError, match="not a study folder"):
        StudyStore(store.root / "images")


def test_add_manifest_rows_refuses_duplicates(copy_study):
    store = copy_study
    seg = store.cohort["P001"].timepoint("pre").segmentations[0]
    row = {"patient_id": "P001", "timepoint": "pre", "kind": "segmentation", "path": seg.path, "reader": "R9"}
    with pytest.raises(ManifestError, match="already listed"):
        store.add_manifest_rows([row])
    store.add_manifest_rows([{**row, "path": "images/P001/pre/seg/R9__manual.nii.gz"}])
    assert "R9" in store.cohort.readers()


def test_missing_timepoint_error(synthetic_study):
    import copy

    patient = copy.deepcopy(synthetic_study.cohort["P001"])
    del patient.timepoints["c4"]  # the synthetic cohort's ultrasound-only visit
    with pytest.raises(MissingTimepointError, match="P001 has no timepoint 'c4'"):
        patient.timepoint("c4")
    assert json.dumps(synthetic_study.cohort.to_dict())  # serialisable


def test_reference_segmentation_does_not_depend_on_row_order():
    """One rule picks the delineation that stands for the tumour: reference, consensus, manual,
    MONAI, FTV, then readers alphabetically; two files of that reader and method are refused
    with both paths unless the image decides."""
    from NACResponseLib.study.model import Segmentation, Timepoint

    segs = [Segmentation("b.nii.gz", "R2", "manual"), Segmentation("m.nii.gz", "AI", "monai"),
            Segmentation("a.nii.gz", "R1", "manual"), Segmentation("g.nii.gz", "GT", "reference")]
    for order in (segs, segs[::-1], segs[1:] + segs[:1]):
        tp = Timepoint("pre", segmentations=list(order))
        assert tp.reference_segmentation().path == "g.nii.gz"
        assert tp.reference_segmentation(method="manual").path == "a.nii.gz"
        assert tp.reference_segmentation(reader="AI").path == "m.nii.gz"
        assert tp.reference_segmentation(reader="nobody") is None
    tp = Timepoint("c2", segmentations=[Segmentation("us.nii.gz", "R1", "manual", reference="us_bmode"),
                                        Segmentation("mr.nii.gz", "R1", "manual", reference="dce_early")])
    with pytest.raises(InputError, match=r"c2: reader 'R1' \(manual\) has 2 segmentations \(mr.nii.gz, us.nii.gz"):
        tp.reference_segmentation(reader="R1")
    assert tp.reference_segmentation(reader="R1", image="us_bmode").path == "us.nii.gz"
