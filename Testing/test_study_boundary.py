"""The study folder is a boundary: no id, manifest path or companion file leads outside it."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import InputError, ManifestError
from NACResponseLib.readers.sessions import create_session
from NACResponseLib.study.importers import import_manifest, materialise
from NACResponseLib.study.validate import validate_study


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(4 * 36, dtype=np.int16).reshape(4, 6, 6)), str(path))
    return path


@pytest.mark.parametrize("bad", [".", ".."])
@pytest.mark.parametrize("column", ["patient_id", "reader"])
def test_dot_ids_are_refused_before_anything_is_copied(tmp_path, bad, column):
    img = _image(tmp_path / "src" / "early.nii.gz")
    mask = _image(tmp_path / "src" / "m.nii.gz")
    pid = bad if column == "patient_id" else "P1"
    reader = bad if column == "reader" else "R1"
    rows = [{"patient_id": pid, "timepoint": "pre", "kind": "image", "path": str(img), "modality": "MR",
             "role": "dce_early"},
            {"patient_id": pid, "timepoint": "pre", "kind": "segmentation", "path": str(mask), "reader": reader}]
    dest = tmp_path / "deep" / "study"
    with pytest.raises(ManifestError, match=column):
        materialise(rows, dest)
    assert not (tmp_path / "deep" / "pre").exists() and not (dest / "pre").exists()


@pytest.mark.parametrize(("what", "bad"), [("session name", ".."), ("reader id", ".."), ("reader id", ".")])
def test_dot_session_and_reader_ids_are_refused(copy_study, what, bad):
    kwargs = {"name": bad, "readers": ["A1"]} if what == "session name" else {"name": "s", "readers": [bad]}
    with pytest.raises(InputError, match=f"{what} '{bad}'"):
        create_session(copy_study, kwargs["name"], kwargs["readers"], patients=["P001"])
    assert not (copy_study.root.parent / "A1").exists()


@pytest.mark.parametrize("listed", ["/etc/passwd", "../../etc/passwd", "../outside.nii.gz"])
def test_manifest_paths_outside_its_folder_are_refused(tmp_path, listed):
    _image(tmp_path / "outside.nii.gz")
    src = tmp_path / "src"
    _image(src / "early.nii.gz")
    (src / "manifest.csv").write_text("patient_id,timepoint,kind,path,modality,role\n"
                                      f"A1,pre,image,early.nii.gz,MR,dce_early\nA1,pre,image,{listed},MR,t2w\n")
    with pytest.raises(InputError, match=r"manifest.csv:3: .*(not an image file|outside the manifest's folder)"):
        import_manifest(src / "manifest.csv", tmp_path / "study")
    assert not (tmp_path / "study").exists()


def _mhd(folder, data_file):
    folder.mkdir(parents=True, exist_ok=True)
    header = folder / "t2w.mhd"
    header.write_text("ObjectType = Image\nNDims = 3\nDimSize = 6 6 4\nElementType = MET_SHORT\n"
                      f"ElementDataFile = {data_file}\n")
    return header


def test_mhd_data_file_outside_the_source_is_not_copied(tmp_path):
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"\1" * 288)
    src = tmp_path / "src"
    _image(src / "early.nii.gz")
    _mhd(src, "../secret.raw")
    (src / "manifest.csv").write_text("patient_id,timepoint,kind,path,modality,role\n"
                                      "A1,pre,image,early.nii.gz,MR,dce_early\nA1,pre,image,t2w.mhd,MR,t2w\n")
    with pytest.raises(InputError, match=r"t2w.mhd: its data file '../secret.raw' is not in the header's folder"):
        import_manifest(src / "manifest.csv", tmp_path / "study")
    assert not list(tmp_path.glob("study/**/secret.raw"))


def test_validate_catches_an_mhd_pointing_outside_the_study(copy_study, tmp_path):
    (tmp_path / "secret.raw").write_bytes(b"\1" * 288)
    tp = copy_study.cohort["P001"].timepoint("pre")
    target = copy_study.path(tp.image("t2w").path)
    header = _mhd(target.parent, "../../../../secret.raw")
    rows = [{"patient_id": "P001", "timepoint": "pre", "kind": "image", "path": str(header.relative_to(copy_study.root)),
             "modality": "MR", "role": "t2w", "description": "planted"}]
    from NACResponseLib.study.manifest import read_manifest_rows, write_manifest

    kept = [r for r in read_manifest_rows(copy_study.manifest_path)
            if not (r["patient_id"] == "P001" and r["timepoint"] == "pre" and r.get("role") == "t2w")]
    write_manifest(kept + rows, copy_study.manifest_path)
    copy_study._cohort = None
    report = validate_study(copy_study)
    assert not report["valid"]
    assert any("t2w.mhd" in e and "outside the header's folder" in e for e in report["errors"]), report["errors"]


def test_relative_manifest_path_escaping_the_study_is_refused(copy_study):
    with pytest.raises(InputError, match="leads outside the study folder"):
        copy_study.path("../../etc/passwd")
    assert copy_study.path("images/P001").is_dir()


def test_dicom_patient_id_dots_become_anonymous():
    from NACResponseLib.study.dicom_import import DicomSeries, _patient_id

    assert _patient_id(DicomSeries("1.2", tags={"PatientID": ".."})) == "anonymous"
    assert _patient_id(DicomSeries("1.2", tags={"PatientID": "P.1"})) == "P.1"


def test_manifest_schema_and_paths_share_the_id_rule():
    from NACResponseLib.paths import ID_PATTERN
    from NACResponseLib.study.manifest import manifest_schema

    props = manifest_schema()["properties"]
    assert props["patient_id"]["pattern"] == props["reader"]["pattern"] == ID_PATTERN.pattern


@pytest.mark.parametrize("bad", ["..", "../../x", "a/b"])
def test_user_given_reader_ids_never_become_escaping_paths(copy_study, bad):
    from NACResponseLib.readers.consensus import build_consensus
    from NACResponseLib.segmentation.cohort import output_path

    with pytest.raises(InputError, match="reader id"):
        output_path("P001", "pre", bad, "monai")
    with pytest.raises(InputError, match="consensus reader id"):
        build_consensus(copy_study, {}, reader_id=bad)
