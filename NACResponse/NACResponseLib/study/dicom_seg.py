"""DICOM SEG in and out through highdicom, tied to the DICOM series a study was imported from.

A study imported from DICOM keeps, per series, the header attributes a SEG must copy or reference
(patient, study, frame of reference, and each slice's SOPInstanceUID and position) in
``<study>/dicom/<SeriesInstanceUID>.json``; the pixels stay in the NIfTI image.

* Export (:func:`write_dicom_seg`): one binary SEG per mask, referencing the source series' real
  instances.  Segment label ``<reader> <method>``; segment description
  ``reader <r>; method <m>; timepoint <tp>``, which import reads back.  A mask whose image has no
  recorded series is refused: a SEG never gets a made-up reference.
* Import (:func:`read_segments`, :func:`segment_mask`, :func:`import_dicom_seg`): the SEG's
  ReferencedSeriesSequence names the study series whose grid the masks go on; every segment is
  read on its own (overlapping segments stay separate); the geometry must match that grid
  (highdicom's ``Volume.match_geometry``: axes may be permuted or flipped, never resampled).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GeometryMismatchError, InputError
from ..paths import check_id

DICOM_DIR = "dicom"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SERIES_TAGS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
               "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyDescription",
               "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality", "FrameOfReferenceUID",
               "Rows", "Columns", "PixelSpacing", "ImageOrientationPatient", "SliceThickness",
               "SpacingBetweenSlices", "SpecificCharacterSet")
INSTANCE_TAGS = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "ImagePositionPatient")
_EMPTY_ALLOWED = ("PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
                  "StudyTime", "ReferringPhysicianName")
_DESCRIPTION = re.compile(r"reader\s+(?P<reader>[^;]+);\s*method\s+(?P<method>[^;]+)(;\s*timepoint\s+(?P<tp>[^;]+))?")
# method -> (SegmentAlgorithmType, algorithm family in DICOM CID 7162)
METHOD_ALGORITHM = {"manual": ("MANUAL", None), "reference": ("MANUAL", None),
                    "consensus": ("SEMIAUTOMATIC", "MultispectralProcessing"),
                    "monai": ("AUTOMATIC", "ArtificialIntelligence"), "ftv": ("AUTOMATIC", "HistogramAnalysis")}


def _require_highdicom() -> None:
    try:
        import highdicom  # noqa: F401
    except ImportError:
        raise InputError("DICOM SEG needs highdicom: pip install 'nacresponse[dicom-seg]'") from None


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, (int, float)):
        return value
    if type(value).__name__ in ("DSfloat", "DSdecimal"):
        return float(value)
    if type(value).__name__ == "IS":
        return int(value)
    return str(value)


# ---- series records (written at DICOM import) -------------------------------------------------

def series_record(files: list[Path]) -> dict[str, Any]:
    """What a SEG needs of one imported series: series attributes and every instance's UID and position."""
    import pydicom

    instances, series = [], {}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        if not series:
            series = {k: _plain(ds.get(k)) for k in SERIES_TAGS if k in ds}
        instances.append({k: _plain(ds.get(k)) for k in INSTANCE_TAGS if k in ds})
    return {"series": series, "instances": instances}


def write_series_record(study_root: str | Path, series_uid: str, files: list[Path]) -> Path:
    from ..atomic import atomic_write_text

    path = Path(study_root) / DICOM_DIR / f"{series_uid}.json"
    atomic_write_text(path, json.dumps(series_record(files), indent=1))
    return path


def read_series_record(store, series_uid: str) -> dict[str, Any]:
    if not re.fullmatch(r"[0-9.]+", series_uid or ""):
        raise InputError(f"{store.manifest_path}: {series_uid!r} is not a DICOM UID")
    path = store.root / DICOM_DIR / f"{series_uid}.json"
    if not path.is_file():
        raise InputError(f"{path}: no DICOM header record of series {series_uid} (the study was imported before "
                         "records were kept); re-import the DICOM folder to export DICOM SEG")
    return json.loads(path.read_text())


def _source_datasets(record: dict[str, Any]):
    from pydicom.dataset import Dataset

    out = []
    for inst in record["instances"]:
        ds = Dataset()
        for k in _EMPTY_ALLOWED:
            setattr(ds, k, "")
        for k, v in {**record["series"], **inst}.items():
            if v is not None:
                setattr(ds, k, v)
        out.append(ds)
    return out


# ---- export -------------------------------------------------------------------------------------

def _image_of(store, patient_id: str, timepoint: str, image_key: str):
    tp = store.cohort[patient_id].timepoint(timepoint)
    if not tp.has_image(image_key):
        raise InputError(f"{store.manifest_path}: {patient_id}/{timepoint} has no image {image_key!r}")
    return tp.image(image_key)


def _frames_in_source_order(mask, record: dict[str, Any], where: str) -> np.ndarray:
    """(instances, rows, columns) mask array: each source slice gets the mask slice at its position."""
    import SimpleITK as sitk

    series = record["series"]
    if mask.GetDimension() != 3:
        raise InputError(f"{where}: DICOM SEG export handles cross-sectional (3D) series; this mask is 2D")
    size = mask.GetSize()
    if (size[0], size[1]) != (int(series.get("Columns", -1)), int(series.get("Rows", -1))):
        raise GeometryMismatchError(f"{where}: mask is {size[0]} x {size[1]} in-plane but the DICOM series is "
                                    f"{series.get('Columns')} x {series.get('Rows')}")
    direction = np.asarray(mask.GetDirection(), float).reshape(3, 3)
    iop = np.asarray(series.get("ImageOrientationPatient") or [np.nan] * 6, float)
    if not np.allclose(direction[:, 0], iop[:3], atol=1e-3) or not np.allclose(direction[:, 1], iop[3:], atol=1e-3):
        raise GeometryMismatchError(f"{where}: mask orientation differs from the DICOM series' "
                                    "ImageOrientationPatient (was the image resampled after import?)")
    array = sitk.GetArrayViewFromImage(mask)
    positions = np.array([mask.TransformIndexToPhysicalPoint((0, 0, z)) for z in range(size[2])])
    tol = 0.05 * min(mask.GetSpacing())
    frames = np.zeros((len(record["instances"]), size[1], size[0]), np.uint8)
    used = set()
    for i, inst in enumerate(record["instances"]):
        ipp = np.asarray(inst.get("ImagePositionPatient") or [np.nan] * 3, float)
        dist = np.linalg.norm(positions - ipp[None], axis=1)
        z = int(np.argmin(dist))
        if not dist[z] <= tol:
            raise GeometryMismatchError(f"{where}: DICOM slice {inst.get('SOPInstanceUID')} at {ipp.tolist()} is not "
                                        "a slice of the mask's grid")
        frames[i] = array[z] != 0
        used.add(z)
    if len(used) != size[2]:
        raise GeometryMismatchError(f"{where}: the mask has {size[2]} slices but the DICOM series "
                                    f"{series.get('SeriesInstanceUID')} matches only {len(used)} of them")
    return frames


def segment_description(reader: str, method: str, timepoint: str) -> str:
    return f"reader {reader}; method {method}; timepoint {timepoint}"


def write_dicom_seg(store, patient_id: str, timepoint: str, image_key: str, mask_path: str | Path,
                    out_path: str | Path, *, reader: str, method: str, label: int = 1) -> Path:
    """Write one mask (voxels == ``label``) as a binary DICOM SEG referencing the source series."""
    import SimpleITK as sitk
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from .. import __version__
    from ..atomic import atomic_path
    from ..provenance import sha256_file

    _require_highdicom()
    import highdicom as hd

    image = _image_of(store, patient_id, timepoint, image_key)
    where = f"{patient_id}/{timepoint} {reader}/{method} ({mask_path})"
    if not image.series_uid:
        raise InputError(f"{where}: image {image_key!r} has no SeriesInstanceUID in the manifest (the study was "
                         "not imported from DICOM), so a DICOM SEG cannot reference its source series")
    record = read_series_record(store, image.series_uid)
    mask = sitk.ReadImage(str(mask_path))
    mask = sitk.Cast(mask == int(label), sitk.sitkUInt8)
    frames = _frames_in_source_order(mask, record, where)
    if not frames.any():
        raise InputError(f"{where}: mask is empty (no voxel with label {label})")
    algorithm, family = METHOD_ALGORITHM.get(method, ("AUTOMATIC", "ArtificialIntelligence"))
    identification = None
    if family is not None:
        identification = hd.AlgorithmIdentificationSequence(
            name=f"NACResponse {method}", version=__version__, family=getattr(codes.cid7162, family))
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label=f"{reader} {method}"[:64],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=algorithm,
        algorithm_identification=identification, tracking_id=f"{patient_id} {timepoint} {reader} {method}"[:64],
        tracking_uid=generate_uid(entropy_srcs=[image.series_uid, reader, method, "tracking"]))
    description.SegmentDescription = segment_description(reader, method, timepoint)
    digest = sha256_file(mask_path)
    try:
        seg = _segmentation(hd, record, frames, description, image.series_uid, reader, method, timepoint, digest)
    except (ValueError, AttributeError, TypeError) as exc:  # highdicom's checks of the source attributes
        raise InputError(f"{where}: cannot reference series {image.series_uid} in a DICOM SEG ({exc})") from None
    with atomic_path(out_path) as tmp:
        seg.save_as(str(tmp))
    return Path(out_path)


def _segmentation(hd, record, frames, description, series_uid, reader, method, timepoint, digest):
    from pydicom.uid import generate_uid

    from .. import __version__

    return hd.seg.Segmentation(
        source_images=_source_datasets(record), pixel_array=frames, segmentation_type="BINARY",
        segment_descriptions=[description],
        series_instance_uid=generate_uid(entropy_srcs=[series_uid, reader, method, digest, "series"]),
        series_number=9000, sop_instance_uid=generate_uid(entropy_srcs=[series_uid, reader, method, digest, "instance"]),
        instance_number=1, manufacturer="NACResponse", manufacturer_model_name="NACResponse",
        software_versions=__version__, device_serial_number="none",
        series_description=f"SEG {reader} {method} {timepoint}"[:64],
        content_description=segment_description(reader, method, timepoint)[:64],
        content_label=re.sub(r"[^A-Z0-9_ ]", "_", f"{reader}_{method}".upper())[:16])


# ---- import -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SegmentInfo:
    number: int
    label: str
    description: str
    algorithm_type: str
    reader: str | None  # from our own segment description, when present
    method: str | None
    timepoint: str | None


def read_seg(path: str | Path):
    """The SEG as a highdicom Segmentation, or an error that names the file and the problem."""
    import pydicom

    _require_highdicom()
    import highdicom as hd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:  # pydicom raises several types for corrupt files
        raise InputError(f"{path}: cannot read DICOM ({exc})") from None
    if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
        raise InputError(f"{path}: not a DICOM Segmentation object (SOP class {ds.get('SOPClassUID')})")
    try:
        return hd.seg.Segmentation.from_dataset(ds)
    except (AttributeError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a valid DICOM SEG ({exc})") from None


def referenced_series(seg) -> list[str]:
    return [str(item.SeriesInstanceUID) for item in seg.get("ReferencedSeriesSequence", [])]


def read_segments(seg) -> list[SegmentInfo]:
    out = []
    for item in seg.SegmentSequence:
        text = str(item.get("SegmentDescription", "") or "")
        match = _DESCRIPTION.fullmatch(text.strip())
        out.append(SegmentInfo(number=int(item.SegmentNumber), label=str(item.get("SegmentLabel", "") or ""),
                               description=text, algorithm_type=str(item.get("SegmentAlgorithmType", "")),
                               reader=match["reader"].strip() if match else None,
                               method=match["method"].strip() if match else None,
                               timepoint=match["tp"].strip() if match and match["tp"] else None))
    return out


def choose_segment(segments: list[SegmentInfo], wanted: int | str | None, where: str) -> SegmentInfo:
    """A segment by number or by label / reader name (default: the only one)."""
    if wanted is None:
        if len(segments) != 1:
            raise InputError(f"{where}: {len(segments)} segments {[(s.number, s.label) for s in segments]}; "
                             "choose one by number or label")
        return segments[0]
    if isinstance(wanted, int) or str(wanted).isdigit():
        hits = [s for s in segments if s.number == int(wanted)]
    else:
        name = str(wanted).strip().lower()
        hits = [s for s in segments if name in (s.label.strip().lower(), (s.reader or "").lower())]
    if not hits:
        raise InputError(f"{where}: no segment {wanted!r} (segments: {[(s.number, s.label) for s in segments]})")
    return hits[0]


def segment_mask(seg, number: int, reference, where: str):
    """Segment ``number`` as a binary SimpleITK mask on ``reference``'s voxel grid."""
    import SimpleITK as sitk

    _require_highdicom()
    import highdicom as hd

    if reference.GetDimension() != 3:
        raise InputError(f"{where}: DICOM SEG import handles cross-sectional (3D) images only")
    try:
        volume = seg.get_volume(segment_numbers=[number], combine_segments=False)
    except (RuntimeError, ValueError) as exc:
        raise GeometryMismatchError(f"{where}: segment {number} is not a regular 3D volume ({exc})") from None
    # one segment down the channel axis; FRACTIONAL values are rescaled to 0..1 and kept from 0.5 up
    fractional = str(seg.SegmentationType).upper() == "FRACTIONAL"
    volume = volume.with_array(np.asarray(volume.array[..., 0] >= 0.5 if fractional else volume.array[..., 0] != 0,
                                          np.uint8), channels={})
    target = hd.Volume.from_simpleitk(_blank_like(reference))
    if not np.allclose(sorted(volume.spacing), sorted(target.spacing), rtol=1e-3) and volume.spatial_shape[0] > 1:
        raise GeometryMismatchError(f"{where}: voxel spacing {tuple(round(v, 4) for v in volume.spacing)} differs "
                                    f"from the referenced series' {tuple(round(v, 4) for v in target.spacing)}")
    try:
        matched = volume.match_geometry(target, tol=1e-3)
    except RuntimeError as exc:
        raise GeometryMismatchError(f"{where}: segment {number} does not lie on the referenced series' voxel "
                                    f"grid ({exc})") from None
    if not np.allclose(matched.affine, target.affine, atol=0.01 * min(target.spacing)):
        raise GeometryMismatchError(f"{where}: segment {number} is not on the referenced series' voxel grid "
                                    "(orientation or position differ)")
    out = sitk.GetImageFromArray(np.ascontiguousarray(matched.array.transpose(2, 1, 0)).astype(np.uint8))
    out.CopyInformation(reference)
    if not sitk.GetArrayViewFromImage(out).any():
        raise InputError(f"{where}: segment {number} has no voxel inside the referenced image")
    return out


def _blank_like(reference):
    import SimpleITK as sitk

    blank = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    blank.CopyInformation(reference)
    return blank


def find_series(store, series_uids: list[str], where: str):
    """(patient, timepoint, image) of the first referenced series the study holds; else name the missing UIDs."""
    for patient in store.cohort:
        for tp in patient.ordered_timepoints():
            for image in tp.images:
                if image.series_uid and image.series_uid in series_uids:
                    return patient.patient_id, tp.name, image
    if not series_uids:
        raise InputError(f"{where}: the SEG has no ReferencedSeriesSequence, so the series it was drawn on is unknown")
    raise InputError(f"{where}: references SeriesInstanceUID {', '.join(series_uids)}, which is not in the study "
                     f"{store.root}")


def import_dicom_seg(store, path: str | Path, *, owners: dict[str, tuple[str, str]] | None = None
                     ) -> list[dict[str, Any]]:
    """Add every segment of a SEG to the study as a segmentation on the referenced series' grid.

    Each segment's reader and method come from ``owners`` (keyed by segment number or label), else
    from our own segment description, else (manual segments only) the label is the reader.
    Masks go to ``images/<patient>/<tp>/seg/<reader>__<method>.nii.gz``; existing ones are never
    overwritten.  Returns the manifest rows added.
    """
    from ..imageio import read_image, write_image
    from ..provenance import now_iso

    path = Path(path)
    seg = read_seg(path)
    pid, tp_name, image = find_series(store, referenced_series(seg), str(path))
    reference = read_image(store.path(image.path))
    owners = {str(k).lower(): v for k, v in (owners or {}).items()}
    rows, masks = [], []
    for info in read_segments(seg):
        owner = owners.get(str(info.number)) or owners.get(info.label.lower())
        if owner is None and info.reader:
            owner = (info.reader, info.method or "manual")
        if owner is None and info.algorithm_type == "MANUAL" and info.label:
            owner = (re.sub(r"[^A-Za-z0-9_.-]", "_", info.label.strip()), "manual")
        if owner is None:
            raise InputError(f"{path}: segment {info.number} ({info.label!r}, {info.algorithm_type}) has no reader; "
                             "name it with --segment NUMBER_OR_LABEL=READER[:METHOD]")
        reader, method = owner
        check_id(reader, f"{path}: segment {info.number}: reader")
        check_id(method, f"{path}: segment {info.number}: method")
        rel = f"images/{pid}/{tp_name}/seg/{reader}__{method}.nii.gz"
        tp = store.cohort[pid].timepoint(tp_name)
        if store.path(rel).exists() or tp.segmentations_by(reader=reader, method=method):
            raise InputError(f"{path}: {pid}/{tp_name} already has a {method} segmentation by {reader}; it is never "
                             "overwritten (map the segment to another reader with --segment)")
        masks.append((rel, segment_mask(seg, info.number, reference, f"{path} segment {info.number}")))
        rows.append({"patient_id": pid, "timepoint": tp_name, "kind": "segmentation", "path": rel,
                     "reader": reader, "method": method, "label": 1, "reference": image.key, "created": now_iso(),
                     "description": f"DICOM SEG {path.name} segment {info.number} {info.label}"[:200],
                     "date": tp.date, "cycle": tp.cycle})
    for rel, mask in masks:  # every segment read before anything is written
        write_image(mask, store.path(rel))
    store.add_manifest_rows(rows)
    store.audit("seg.import-dicom", target=str(path), details={"segments": len(rows), "series": image.series_uid})
    return rows


def export_dicom_segs(store, items: list[tuple[str, str, Any, str]], out_dir: str | Path) -> dict[str, Any]:
    """Write ``(patient, timepoint, Segmentation, relative output path)`` items as DICOM SEG under ``out_dir``.

    A study with no DICOM series behind any of the masks is one input error; otherwise each mask
    that cannot be written is recorded in ``failed`` and the others are still written.
    """
    from ..errors import NACError

    out = Path(out_dir)
    uids = [_image_of(store, pid, tp, seg.reference).series_uid for pid, tp, seg, _ in items]
    if items and not any(uids):
        raise InputError(f"{store.root}: none of the {len(items)} masks lies on an image imported from DICOM (no "
                         "SeriesInstanceUID in the manifest); DICOM SEG export needs 'nacresponse import --dicom'")
    written, failed = [], {}
    for pid, tp, seg, rel in items:
        try:
            written.append(write_dicom_seg(store, pid, tp, seg.reference, store.path(seg.path), out / rel,
                                           reader=seg.reader, method=seg.method, label=int(seg.label)))
        except NACError as exc:
            failed[rel] = str(exc)
    return {"written": written, "failed": failed}
