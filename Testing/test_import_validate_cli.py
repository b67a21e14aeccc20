"""Importers (folder, manifest, DICOM), validation report and the CLI's help, errors and exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.cli import main
from NACResponseLib.errors import InputError
from NACResponseLib.study.importers import import_folder, import_manifest, scan_folder
from NACResponseLib.study.store import StudyStore
from NACResponseLib.study.validate import validate_study


def test_folder_import_roundtrip(synthetic_study, synthetic_source):
    cohort = synthetic_study.cohort
    assert len(cohort) == 6 and cohort.readers() == ["GT", "GT_US", "R1", "R2"]  # GT_US: the ultrasound outline
    tp = cohort["P001"].timepoint("pre")
    assert {"dce_pre", "dce_early", "dce_late", "t2w", "dwi_b800", "adc"} <= {i.key for i in tp.images}
    assert tp.image("dwi_b800").b_value == 800
    assert {s.reader: s.reference for s in tp.segmentations} == {"GT": "dce_early", "R1": "dce_early",
                                                                   "R2": "dce_early", "GT_US": "us_bmode"}
    assert (synthetic_study.root / tp.images[0].path).is_file()  # copied into the study folder
    assert cohort["P001"].outcomes["pcr"] in (0, 1)
    with pytest.raises(InputError, match="already holds a study"):
        import_folder(synthetic_source, synthetic_study.root)


def test_folder_convention_errors(tmp_path):
    (tmp_path / "P1" / "week3").mkdir(parents=True)
    with pytest.raises(InputError, match="unknown timepoint folder 'week3'"):
        scan_folder(tmp_path)
    shutil.rmtree(tmp_path / "P1")
    (tmp_path / "P1" / "pre").mkdir(parents=True)
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkInt16), str(tmp_path / "P1" / "pre" / "dwi.nii.gz"))
    with pytest.raises(InputError, match="needs its b-value"):
        scan_folder(tmp_path)
    (tmp_path / "P1" / "pre" / "dwi.nii.gz").rename(tmp_path / "P1" / "pre" / "flair.nii.gz")
    with pytest.raises(InputError, match="cannot tell the image role from the file name 'flair'"):
        scan_folder(tmp_path)


def test_manifest_import_with_nrrd_and_mha(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    img = sitk.GetImageFromArray(np.random.default_rng(0).normal(100, 5, (6, 8, 8)).astype(np.float32))
    mask = sitk.GetImageFromArray((np.arange(6 * 64).reshape(6, 8, 8) % 7 == 0).astype(np.uint8))
    sitk.WriteImage(img, str(src / "early.nrrd"))
    sitk.WriteImage(mask, str(src / "m.mha"))
    (src / "manifest.csv").write_text(
        "patient_id,timepoint,kind,path,modality,role,reader\n"
        "A1,pre,image,early.nrrd,MR,dce_early,\nA1,pre,segmentation,m.mha,,,R1\n")
    store = import_manifest(src / "manifest.csv", tmp_path / "study")
    report = validate_study(store)
    assert report["valid"], report["errors"]
    assert store.cohort["A1"].timepoint("pre").segmentations[0].reader == "R1"


def _bad_study(tmp_path, synthetic_source):
    """A copy of two synthetic patients with planted problems."""
    src = tmp_path / "bad_src"
    for pid in ("P001", "P002"):
        shutil.copytree(synthetic_source / pid, src / pid)
    shutil.rmtree(src / "P002" / "pre")  # missing timepoint
    seg = src / "P001" / "c2" / "seg" / "R1__manual.nii.gz"
    empty = sitk.ReadImage(str(seg)) * 0
    sitk.WriteImage(empty, str(seg))  # empty mask
    other = src / "P001" / "pre" / "seg" / "R2__manual.nii.gz"
    m = sitk.ReadImage(str(other))
    m.SetSpacing((1.0, 1.0, 3.0))
    sitk.WriteImage(m, str(other))  # geometry mismatch
    nan_img = sitk.Cast(sitk.ReadImage(str(src / "P001" / "pre" / "t2w.nii.gz")), sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(nan_img)
    arr[0, 0, 0] = np.nan
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(nan_img)
    (src / "P001" / "pre" / "t2w.nii.gz").unlink()
    sitk.WriteImage(bad, str(src / "P001" / "pre" / "t2w.nrrd"))  # NaN voxel (NRRD keeps NaN; NIfTI would not)
    shutil.copy(synthetic_source / "clinical.csv", src / "clinical.csv")
    return import_folder(src, tmp_path / "bad_study")


def test_validation_reports_every_problem(tmp_path, synthetic_source):
    store = _bad_study(tmp_path, synthetic_source)
    report = validate_study(store)
    text = "\n".join(report["errors"])
    assert not report["valid"]
    assert "P002: missing timepoint 'pre'" in text
    assert "R1__manual.nii.gz: mask is empty" in text
    assert "geometry mismatch between" in text and "R2__manual.nii.gz" in text and "spacing" in text
    assert "t2w.nrrd: 1 voxels are NaN" in text
    # The CLI exits 1 and writes the report files.
    assert main(["--progress", "none", "validate", str(store.root)]) == 1
    assert (store.reports_dir / "validation.md").read_text().count("- P00") >= 4


def test_cli_help_and_errors(tmp_path, capsys):
    out = subprocess.run([sys.executable, "-m", "NACResponseLib.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("import", "validate", "demo", "synthetic"):
        assert command in out.stdout
        sub = subprocess.run([sys.executable, "-m", "NACResponseLib.cli", command, "--help"],
                             capture_output=True, text=True)
        assert sub.returncode == 0 and "usage:" in sub.stdout
    assert main(["validate", str(tmp_path)]) == 2
    assert "not a study folder" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "nowhere"), str(tmp_path / "s")]) == 2


def _write_dicom_mr(folder, series_uid, study_uid, description, n=4, b_value=None, contrast="", time="101010",
                    date="20260101", patient="PAT1", number=1):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{description}_{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.StudyDate = "MR", patient, date
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = description, number, k + 1
        ds.AcquisitionTime = time
        if contrast:
            ds.ContrastBolusAgent = contrast
        if b_value is not None:
            ds.DiffusionBValue = b_value
        ds.ImagePositionPatient = [0.0, 0.0, float(k) * 2.0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 2.0
        ds.Rows, ds.Columns = 8, 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = (np.full((8, 8), 100 + k, np.uint16)).tobytes()
        ds.save_as(str(folder / f"{description}_{k}.dcm"), enforce_file_format=True)


def _write_dicom_mg(path, study_uid, view, laterality, spacing_tag="ImagerPixelSpacing"):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.StudyDate, ds.StudyInstanceUID = "MG", "PAT1", "20260101", study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.ViewPosition, ds.ImageLaterality = view, laterality
    if spacing_tag:
        setattr(ds, spacing_tag, [0.07, 0.07])
    ds.Rows, ds.Columns = 16, 12
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(16 * 12, dtype=np.uint16).reshape(16, 12).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)


def test_dicom_import_groups_series_and_guesses_roles(tmp_path):
    from pydicom.uid import generate_uid

    from NACResponseLib.study.dicom_import import import_dicom

    d = tmp_path / "dicom"
    pre_study, post_study = generate_uid(), generate_uid()
    _write_dicom_mr(d / "a", generate_uid(), pre_study, "Ax VIBRANT", time="100000", number=3)
    _write_dicom_mr(d / "b", generate_uid(), pre_study, "Ax VIBRANT ph1", contrast="Gd", time="100130", number=4)
    _write_dicom_mr(d / "c", generate_uid(), pre_study, "Ax VIBRANT ph3", contrast="Gd", time="100500", number=6)
    _write_dicom_mr(d / "d", generate_uid(), pre_study, "Ax T2 FSE", number=2)
    _write_dicom_mr(d / "e", generate_uid(), pre_study, "Ax DWI", b_value=800, number=7)
    _write_dicom_mr(d / "f", generate_uid(), post_study, "Ax T2 FSE", date="20260601", number=2)
    _write_dicom_mg(d / "mg" / "cc.dcm", pre_study, "CC", "L")
    _write_dicom_mg(d / "mg" / "nospacing.dcm", pre_study, "MLO", "L", spacing_tag=None)
    (d / "broken.dcm").write_bytes(b"this is not dicom")
    store, problems = import_dicom(d, tmp_path / "study")
    cohort = store.cohort
    pre = cohort["PAT1"].timepoint("pre")
    assert {i.key for i in pre.images} == {"dce_pre", "dce_early", "dce_late", "t2w", "dwi_b800", "mg_cc_L"}
    assert {i.key for i in cohort["PAT1"].timepoint("post").images} == {"t2w"}
    mg = sitk.ReadImage(str(store.path(pre.image("mg_cc_L").path)))
    assert mg.GetDimension() == 2 and mg.GetSpacing() == pytest.approx((0.07, 0.07))
    t2 = sitk.ReadImage(str(store.path(pre.image("t2w").path)))
    assert t2.GetSize() == (8, 8, 4) and t2.GetSpacing() == pytest.approx((0.7, 0.7, 2.0))
    joined = "\n".join(problems)
    assert "broken.dcm: corrupt or not DICOM" in joined
    assert "neither PixelSpacing nor ImagerPixelSpacing" in joined and "nospacing.dcm" in joined


def test_demo_study_stage(tmp_path):
    assert main(["--progress", "none", "demo", "--out", str(tmp_path / "demo"), "--patients", "3",
                 "--stages", "study", "--quick"]) == 0
    store = StudyStore(tmp_path / "demo" / "study")
    assert (store.reports_dir / "validation.md").is_file() and store.catalogue_path.is_file()
    assert (tmp_path / "demo" / "report.html").read_text().count("valid") >= 1
