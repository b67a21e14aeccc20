"""DICOM SEG in and out through highdicom, on an MR series made with pydicom.

Independent readers: pydicom reads the attributes Slicer's DICOM SEG plugin (QuantitativeReporting)
reads; highdicom decodes the frames; voxels are compared with the mask that was exported.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import GeometryMismatchError, InputError

hd = pytest.importorskip("highdicom")

ROWS, COLS, SLICES = 10, 12, 6
IOP = [1.0, 0.0, 0.0, 0.0, 0.8, -0.6]  # oblique rows: catches axis and sign mix-ups


def _write_series(folder, *, patient="PAT1", series_uid=None, study_uid=None, for_uid=None):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    series_uid, study_uid, for_uid = series_uid or generate_uid(), study_uid or generate_uid(), for_uid or generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    normal = np.cross(IOP[:3], IOP[3:])
    for k in (3, 0, 5, 1, 4, 2):  # files in shuffled slice order
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"im{k}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName, ds.PatientSex = "MR", patient, "Doe^Jane", "F"
        ds.PatientBirthDate, ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "19700101", "20260105", \
            "101010", "S1", "A1"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, for_uid
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "Ax VIBRANT ph1", 5, k + 1
        ds.ContrastBolusAgent, ds.AcquisitionTime = "Gd", "101500"
        ds.ImagePositionPatient = [float(v) for v in np.array([-40.0, 12.5, 30.0]) + 2.0 * k * normal]
        ds.ImageOrientationPatient = IOP
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.9], 2.0
        ds.Rows, ds.Columns = ROWS, COLS
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.full((ROWS, COLS), 100 + k, np.uint16).tobytes()
        ds.save_as(str(path), enforce_file_format=True)
    return series_uid


@pytest.fixture
def dicom_study(tmp_path):
    from NACResponseLib.study.dicom_import import import_dicom

    uid = _write_series(tmp_path / "dicom")
    store, problems = import_dicom(tmp_path / "dicom", tmp_path / "study")
    assert problems == []
    image = store.cohort["PAT1"].timepoint("pre").image("dce_early")
    assert image.series_uid == uid
    return store


def _reference(store):
    return sitk.ReadImage(str(store.path(store.cohort["PAT1"].timepoint("pre").image("dce_early").path)))


def _mask(reference, boxes):
    array = np.zeros(tuple(reversed(reference.GetSize())), np.uint8)
    for z0, z1, y0, y1, x0, x1 in boxes:
        array[z0:z1, y0:y1, x0:x1] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(reference)
    return mask


def _add_segmentation(store, mask, reader, method="manual"):
    from NACResponseLib.imageio import write_image

    rel = f"images/PAT1/pre/seg/{reader}__{method}.nii.gz"
    write_image(mask, store.path(rel))
    store.add_manifest_rows([{"patient_id": "PAT1", "timepoint": "pre", "kind": "segmentation", "path": rel,
                              "reader": reader, "method": method, "label": 1, "reference": "dce_early"}])
    return rel


def test_export_references_the_source_series_and_reads_back(dicom_study, tmp_path):
    import pydicom

    from NACResponseLib.study.dicom_seg import write_dicom_seg

    ref = _reference(dicom_study)
    mask = _mask(ref, [(1, 4, 2, 7, 3, 9)])
    rel = _add_segmentation(dicom_study, mask, "R1")
    out = write_dicom_seg(dicom_study, "PAT1", "pre", "dce_early", dicom_study.path(rel), tmp_path / "r1.dcm",
                          reader="R1", method="manual")
    ds = pydicom.dcmread(out)
    image = dicom_study.cohort["PAT1"].timepoint("pre").image("dce_early")
    sources = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
               for f in (tmp_path / "dicom").glob("*.dcm")}
    # what Slicer's DICOMSegmentationPlugin reads: SOPInstanceUID, Modality SEG, SeriesDescription,
    # ReferencedSeriesSequence[0].SeriesInstanceUID, segment label/description/algorithm/codes
    assert ds.Modality == "SEG" and ds.SOPInstanceUID and ds.SeriesDescription == "SEG R1 manual pre"
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == image.series_uid
    assert {i.ReferencedSOPInstanceUID for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence} <= sources
    assert ds.PatientID == "PAT1" and ds.StudyInstanceUID and ds.FrameOfReferenceUID
    segment = ds.SegmentSequence[0]
    assert segment.SegmentLabel == "R1 manual" and segment.SegmentAlgorithmType == "MANUAL"
    assert segment.SegmentDescription == "reader R1; method manual; timepoint pre"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeMeaning
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeMeaning
    assert int(ds.NumberOfFrames) == 3  # empty frames omitted
    # highdicom decodes the frames by source instance: the voxels of each source slice
    seg = hd.seg.segread(out)
    truth = sitk.GetArrayFromImage(mask)
    for f in (tmp_path / "dicom").glob("*.dcm"):
        src = pydicom.dcmread(f, stop_before_pixels=True)
        z = int(round(np.dot(np.subtract(src.ImagePositionPatient, ref.GetOrigin()),
                             np.asarray(ref.GetDirection()).reshape(3, 3)[:, 2]) / ref.GetSpacing()[2]))
        if truth[z].any():
            pixels = seg.get_pixels_by_source_instance([src.SOPInstanceUID], segment_numbers=[1])
            assert np.array_equal(pixels[0, :, :, 0], truth[z])


def test_round_trip_through_study_import_gives_same_voxels_and_geometry(dicom_study, tmp_path):
    from NACResponseLib.study.dicom_seg import import_dicom_seg, write_dicom_seg

    ref = _reference(dicom_study)
    mask = _mask(ref, [(0, 6, 1, 9, 0, 12), (2, 3, 0, 1, 0, 2)])  # touches every border
    rel = _add_segmentation(dicom_study, mask, "monai", method="monai")
    out = write_dicom_seg(dicom_study, "PAT1", "pre", "dce_early", dicom_study.path(rel), tmp_path / "m.dcm",
                          reader="monai", method="monai")
    assert hd.seg.segread(out).SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    with pytest.raises(InputError, match="never overwritten"):
        import_dicom_seg(dicom_study, out)
    rows = import_dicom_seg(dicom_study, out, owners={"1": ("copy", "monai")})
    back = sitk.ReadImage(str(dicom_study.path(rows[0]["path"])))
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mask))
    assert back.GetSize() == ref.GetSize()
    assert np.allclose(back.GetOrigin(), ref.GetOrigin()) and np.allclose(back.GetSpacing(), ref.GetSpacing())
    assert np.allclose(back.GetDirection(), ref.GetDirection())
    assert dicom_study.cohort["PAT1"].timepoint("pre").segmentations_by(reader="copy")[0].method == "monai"


def _highdicom_seg(store, arrays, labels, path, *, series_uid=None, algorithm="MANUAL", fractional=None):
    """A multi-frame, multi-segment SEG written by highdicom itself from the original DICOM files."""
    import pydicom
    from pydicom.sr.codedict import codes

    files = sorted(store.root.parent.joinpath("dicom").glob("*.dcm"))
    sources = sorted((pydicom.dcmread(f) for f in files), key=lambda d: int(d.InstanceNumber))
    ref = _reference(store)
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=label, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue, algorithm_type=algorithm,
        algorithm_identification=None if algorithm == "MANUAL" else hd.AlgorithmIdentificationSequence(
            name="x", version="1", family=codes.cid7162.ArtificialIntelligence))
        for i, label in enumerate(labels)]
    stacked = np.stack([sitk.GetArrayFromImage(a) for a in arrays], axis=-1).astype(np.uint8)
    if fractional is not None:
        stacked = fractional.astype(np.float32)[..., None]
    # our grid is sorted along the slice normal; the pydicom files are in InstanceNumber order == slice order
    assert [int(d.InstanceNumber) for d in sources] == list(range(1, SLICES + 1))
    assert np.allclose(sources[0].ImagePositionPatient, ref.GetOrigin(), atol=1e-3)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=stacked, segmentation_type="BINARY" if fractional is None else "FRACTIONAL",
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=7, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="test", manufacturer_model_name="test", software_versions="1", device_serial_number="1")
    if series_uid:
        seg.ReferencedSeriesSequence[0].SeriesInstanceUID = series_uid
    seg.save_as(str(path))
    return path


def test_highdicom_multi_segment_seg_overlapping_segments_import_separately(dicom_study, tmp_path):
    from NACResponseLib.study.dicom_seg import import_dicom_seg

    ref = _reference(dicom_study)
    a = _mask(ref, [(1, 5, 2, 8, 2, 8)])
    b = _mask(ref, [(2, 6, 4, 10, 5, 12)])  # overlaps a
    assert (sitk.GetArrayFromImage(a) & sitk.GetArrayFromImage(b)).any()
    path = _highdicom_seg(dicom_study, [a, b], ["Alice", "Bob"], tmp_path / "two.dcm")
    rows = import_dicom_seg(dicom_study, path)
    assert [(r["reader"], r["method"]) for r in rows] == [("Alice", "manual"), ("Bob", "manual")]
    for row, truth in zip(rows, (a, b)):
        back = sitk.ReadImage(str(dicom_study.path(row["path"])))
        assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(truth))


def test_unknown_series_and_unowned_segments_are_refused(dicom_study, tmp_path):
    from pydicom.uid import generate_uid

    from NACResponseLib.study.dicom_seg import import_dicom_seg

    ref = _reference(dicom_study)
    missing = generate_uid()
    path = _highdicom_seg(dicom_study, [_mask(ref, [(1, 2, 1, 2, 1, 2)])], ["x"], tmp_path / "other.dcm",
                          series_uid=missing)
    with pytest.raises(InputError, match=missing):
        import_dicom_seg(dicom_study, path)
    auto = _highdicom_seg(dicom_study, [_mask(ref, [(1, 2, 1, 2, 1, 2)])], ["net"], tmp_path / "auto.dcm",
                          algorithm="AUTOMATIC")
    with pytest.raises(InputError, match="--segment"):
        import_dicom_seg(dicom_study, auto)
    with pytest.raises(InputError, match="may only contain"):
        import_dicom_seg(dicom_study, auto, owners={"net": ("..", "monai")})
    assert import_dicom_seg(dicom_study, auto, owners={"net": ("N1", "monai")})[0]["reader"] == "N1"
    assert not dicom_study.cohort["PAT1"].timepoint("pre").segmentations_by(reader="x")


def test_export_needs_a_study_imported_from_dicom(copy_study, tmp_path):
    from NACResponseLib.study.dicom_seg import write_dicom_seg

    seg = copy_study.cohort["P001"].timepoint("pre").segmentations_by(reader="R1")[0]
    with pytest.raises(InputError, match="SeriesInstanceUID"):
        write_dicom_seg(copy_study, "P001", "pre", seg.reference, copy_study.path(seg.path), tmp_path / "x.dcm",
                        reader="R1", method="manual")
    assert not (tmp_path / "x.dcm").exists()


def test_grid_mismatch_is_refused(dicom_study, tmp_path):
    from NACResponseLib.study.dicom_seg import read_seg, segment_mask, write_dicom_seg

    ref = _reference(dicom_study)
    rel = _add_segmentation(dicom_study, _mask(ref, [(1, 3, 1, 4, 1, 4)]), "R2")
    out = write_dicom_seg(dicom_study, "PAT1", "pre", "dce_early", dicom_study.path(rel), tmp_path / "r2.dcm",
                          reader="R2", method="manual")
    shifted = sitk.Image(ref)
    shifted.SetOrigin(tuple(np.add(ref.GetOrigin(), 0.3)))
    with pytest.raises(GeometryMismatchError, match="grid"):
        segment_mask(read_seg(out), 1, shifted, "test")
    finer = sitk.Image([2 * s for s in ref.GetSize()], sitk.sitkUInt8)
    finer.SetSpacing([s / 2 for s in ref.GetSpacing()])
    finer.SetOrigin(ref.GetOrigin())
    finer.SetDirection(ref.GetDirection())
    with pytest.raises(GeometryMismatchError, match="spacing"):
        segment_mask(read_seg(out), 1, finer, "test")


def test_fractional_seg_keeps_voxels_from_one_half(dicom_study, tmp_path):
    from NACResponseLib.study.dicom_seg import read_seg, segment_mask

    ref = _reference(dicom_study)
    rng = np.random.default_rng(1)
    probability = rng.random(tuple(reversed(ref.GetSize())))
    path = _highdicom_seg(dicom_study, [ref], ["p"], tmp_path / "frac.dcm", fractional=probability)
    mask = segment_mask(read_seg(path), 1, ref, "test")
    stored = np.round(probability * 255) / 255  # 8-bit fractional values
    assert np.array_equal(sitk.GetArrayFromImage(mask), (stored >= 0.5).astype(np.uint8))


def test_a_series_record_highdicom_cannot_reference_is_an_input_error(dicom_study, tmp_path):
    import json

    from NACResponseLib.study.dicom_seg import DICOM_DIR, write_dicom_seg

    ref = _reference(dicom_study)
    rel = _add_segmentation(dicom_study, _mask(ref, [(1, 3, 1, 4, 1, 4)]), "R3")
    uid = dicom_study.cohort["PAT1"].timepoint("pre").image("dce_early").series_uid
    record_path = dicom_study.root / DICOM_DIR / f"{uid}.json"
    record = json.loads(record_path.read_text())
    del record["series"]["FrameOfReferenceUID"]
    record_path.write_text(json.dumps(record))
    with pytest.raises(InputError, match=uid):
        write_dicom_seg(dicom_study, "PAT1", "pre", "dce_early", dicom_study.path(rel), tmp_path / "x.dcm",
                        reader="R3", method="manual")
    assert not (tmp_path / "x.dcm").exists()
    record_path.unlink()
    with pytest.raises(InputError, match="re-import"):
        write_dicom_seg(dicom_study, "PAT1", "pre", "dce_early", dicom_study.path(rel), tmp_path / "x.dcm",
                        reader="R3", method="manual")
