"""Imports of delineations made elsewhere into reader sessions (NIfTI/NRRD + ITK-SNAP labels, DICOM SEG),
and the session/seg DICOM SEG exports on the command line."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from test_dicom_seg import _add_segmentation, _highdicom_seg, _mask, _reference, _write_series
from test_sessions import _gt_array
from test_sessions import _reference as _cohort_reference

from NACResponseLib.cli import main
from NACResponseLib.errors import GeometryMismatchError, InputError
from NACResponseLib.readers.mask_import import (
    import_folder,
    import_segmentation,
    read_dicom_seg,
    read_itksnap_labels,
)
from NACResponseLib.readers.sessions import create_session


def test_import_nifti_nrrd_with_itksnap_labels(copy_study, tmp_path):
    s = create_session(copy_study, "imp", ["E"], patients=["P005"])
    ref = _cohort_reference(copy_study, "P005/pre")
    truth = _gt_array(copy_study, "P005/pre")
    multi = truth.astype(np.uint8) * 3
    multi[0, 0, 0] = 7  # another structure
    img = sitk.GetImageFromArray(multi)
    img.CopyInformation(ref)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    sitk.WriteImage(img, str(folder / "P005_pre_E.nrrd"))
    labels = folder / "labels.txt"
    labels.write_text('# ITK-SnAP Label Description File\n'
                      '    0     0    0    0        0  0  0    "Clear Label"\n'
                      '    3   255    0    0        1  1  1    "Tumour"\n'
                      '    7     0  255    0        1  1  1    "Clip marker"\n')
    assert read_itksnap_labels(labels) == {0: "Clear Label", 3: "Tumour", 7: "Clip marker"}
    with pytest.raises(InputError, match="several labels"):
        import_segmentation(s, "E", "P005/pre", folder / "P005_pre_E.nrrd")
    result = import_folder(s, "E", folder, label_name="tumour", label_file=labels)
    assert result == {"imported": ["P005/pre"], "failed": {}}
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(s.own_segmentation("E", "P005/pre"))))
    assert np.array_equal(saved, truth.astype(np.uint8))
    assert s.versions("E", "P005/pre")[0]["source"].startswith("import:")


@pytest.fixture
def two_patient_study(tmp_path):
    """Two patients' MR series made with pydicom, imported from DICOM."""
    pytest.importorskip("highdicom")
    from NACResponseLib.study.dicom_import import import_dicom

    _write_series(tmp_path / "dicom")
    _write_series(tmp_path / "dicom" / "pat2", patient="PAT2")
    store, problems = import_dicom(tmp_path / "dicom", tmp_path / "study")
    assert problems == [] and sorted(store.cohort.patients) == ["PAT1", "PAT2"]
    return store


def test_session_imports_a_seg_by_segment_and_checks_its_series(two_patient_study, tmp_path):
    store = two_patient_study
    ref = _reference(store)
    a, b = _mask(ref, [(1, 4, 2, 6, 2, 6)]), _mask(ref, [(2, 5, 3, 8, 4, 9)])
    path = _highdicom_seg(store, [a, b], ["Alice", "Bob"], tmp_path / "two.dcm")
    s = create_session(store, "dcm", ["A"], patients=["PAT1", "PAT2"])
    with pytest.raises(InputError, match="2 segments"):
        import_segmentation(s, "A", "PAT1/pre", path)
    import_segmentation(s, "A", "PAT1/pre", path, label_name="Bob")
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(s.own_segmentation("A", "PAT1/pre"))))
    assert np.array_equal(saved, sitk.GetArrayFromImage(b))
    with pytest.raises(InputError, match="not a series of PAT2/pre"):
        import_segmentation(s, "A", "PAT2/pre", path, label=1)
    shifted = sitk.Image(ref)
    shifted.SetOrigin(tuple(np.add(ref.GetOrigin(), (0.0, 0.45, 0.0))))
    with pytest.raises(GeometryMismatchError):
        read_dicom_seg(path, shifted, segment="Alice")


def test_session_and_seg_export_dicom_seg_round_trip_on_the_command_line(two_patient_study, tmp_path, capsys):
    import highdicom as hd

    store = two_patient_study
    ref = _reference(store)
    truth = _mask(ref, [(0, 3, 2, 9, 1, 11)])
    s = create_session(store, "s", ["A"], patients=["PAT1"])
    s.save("A", "PAT1/pre", truth)
    root = str(store.root)
    assert main(["--progress", "none", "session", "export", root, "--name", "s", "--out",
                 str(tmp_path / "sx"), "--dicom-seg"]) == 0
    seg = hd.seg.segread(tmp_path / "sx" / "A" / "PAT1__pre.dcm")
    assert seg.SegmentSequence[0].SegmentDescription == "reader A; method manual; timepoint pre"
    _add_segmentation(store, truth, "R7")
    out = tmp_path / "segx"
    assert main(["--progress", "none", "seg", "export", root, "--readers", "R7", "--dicom-seg",
                 "--out", str(out)]) == 0
    dcm = out / "PAT1" / "pre" / "R7__manual.dcm"
    assert dcm.is_file() and (out / "PAT1" / "pre" / "R7__manual.nii.gz").is_file()
    assert main(["--progress", "none", "seg", "export", root, "--readers", "R7", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["--progress", "none", "seg", "import", root, "--dicom-seg", str(dcm), "--segment",
                 "1=R8:manual"]) == 0
    back = store.cohort["PAT1"].timepoint("pre").segmentations_by(reader="R8")[0]
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(back.path)))),
                          sitk.GetArrayFromImage(truth))


def test_dicom_seg_export_refused_for_a_study_not_from_dicom(copy_study, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["--progress", "none", "seg", "export", str(copy_study.root), "--readers", "R1", "--dicom-seg",
                 "--out", str(out)]) == 2
    assert "SeriesInstanceUID" in capsys.readouterr().err and not out.exists()
