"""DICOM folder import: group files into series, guess each series' role, convert to NIfTI.

Series are grouped by SeriesInstanceUID (and split by DiffusionBValue when one series holds
several b-values).  The role is guessed from the tags, in this order:

* Modality MG -> ``mg_cc`` / ``mg_mlo`` from ViewPosition, laterality from ImageLaterality /
  Laterality; spacing from PixelSpacing, else ImagerPixelSpacing (so MC extents are in mm).
* Modality US -> ``us_bmode``.
* MR: DiffusionBValue > 0 or a description with dwi/diff -> ``dwi`` (with its b-value); adc ->
  ``adc``; t2 -> ``t2w``; sub -> ``sub``; other T1/DCE series of one study are ordered by
  acquisition time: the first without contrast agent is ``dce_pre``, the next ``dce_early`` and
  the last ``dce_late``.

Timepoints: the distinct StudyDates of a patient in order map to pre / post (2 dates),
pre / c2 / post (3) or pre / c2 / c4 / post (4).  Anything can be overridden per series in a
CSV (columns ``series_uid`` and any of patient_id, timepoint, role, b_value, laterality,
pixel_spacing_mm, skip).  A series that cannot be read or classified is reported with its files
and the import goes on.  Each cross-sectional series' header attributes are kept in
``dicom/<SeriesInstanceUID>.json`` so DICOM SEG exports can reference it (dicom_seg.py).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..imageio import write_image
from ..paths import within
from .dicom_seg import write_series_record
from .model import ROLES, image_key
from .store import StudyStore

TIMEPOINT_SEQUENCES = {1: ["pre"], 2: ["pre", "post"], 3: ["pre", "c2", "post"], 4: ["pre", "c2", "c4", "post"]}


@dataclass
class DicomSeries:
    uid: str
    files: list[Path] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)
    b_value: float | None = None

    @property
    def key(self) -> str:
        return self.uid if self.b_value is None else f"{self.uid}#b{int(self.b_value)}"


def _b_value(ds) -> float | None:
    """DiffusionBValue, or the GE / Siemens private tags that carry it."""
    for tag in ((0x0018, 0x9087), (0x0043, 0x1039), (0x0019, 0x100C)):
        if tag not in ds:
            continue
        value = ds[tag].value
        if isinstance(value, bytes):
            value = value.decode(errors="ignore")
        if not isinstance(value, (str, int, float)):
            value = value[0]  # multi-valued (GE stores b-value first)
        try:
            return float(str(value).split("\\")[0]) % 1e9  # GE adds 1e9 to the b-value
        except ValueError:
            return None
    return None


def scan_dicom(folder: str | Path) -> tuple[dict[str, DicomSeries], list[str]]:
    """Read headers of every file below ``folder``; return series and problems (corrupt files)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    series: dict[str, DicomSeries] = {}
    problems: list[str] = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            uid = str(ds.SeriesInstanceUID)
        except (InvalidDicomError, AttributeError, OSError, ValueError) as exc:
            if f.suffix.lower() in (".dcm", ".ima", "") or f.name.startswith("IM"):
                problems.append(f"{f}: corrupt or not DICOM ({type(exc).__name__}: {exc})")
            continue
        b = _b_value(ds) if str(getattr(ds, "Modality", "")) == "MR" else None
        s = series.setdefault(f"{uid}#b{b}", DicomSeries(uid, b_value=b))
        s.files.append(f)
        if not s.tags:
            s.tags = {k: str(getattr(ds, k, "") or "") for k in (
                "PatientID", "StudyInstanceUID", "StudyDate", "SeriesDescription", "Modality", "ViewPosition",
                "ImageLaterality", "Laterality", "ContrastBolusAgent", "AcquisitionTime", "SeriesTime",
                "SeriesNumber", "SeriesInstanceUID")}
            for k in ("PixelSpacing", "ImagerPixelSpacing"):
                v = getattr(ds, k, None)
                s.tags[k] = [float(x) for x in v] if v is not None else None
    # A series with a single b-value of 0 (or none) is not a diffusion split: key it by UID alone.
    parts_per_uid: dict[str, int] = {}
    for s in series.values():
        parts_per_uid[s.uid] = parts_per_uid.get(s.uid, 0) + 1
    out = {}
    for s in series.values():
        if parts_per_uid[s.uid] == 1 and not s.b_value:
            s.b_value = None
        out[s.key] = s
    return out, problems


_DESC_RULES = [(re.compile(r"adc|apparent", re.I), "adc"), (re.compile(r"dwi|diff|trace", re.I), "dwi"),
               (re.compile(r"t2", re.I), "t2w"), (re.compile(r"sub", re.I), "sub")]


def guess_roles(series: list[DicomSeries]) -> dict[str, dict[str, Any]]:
    """series key -> {role, modality, b_value, laterality} for the series of ONE study."""
    out: dict[str, dict[str, Any]] = {}
    dce: list[DicomSeries] = []
    for s in series:
        t = s.tags
        modality = t.get("Modality", "")
        if modality == "MG":
            view = t.get("ViewPosition", "").upper()
            role = "mg_cc" if view.startswith("CC") else "mg_mlo" if "MLO" in view else None
            lat = (t.get("ImageLaterality") or t.get("Laterality") or "").upper()[:1] or None
            out[s.key] = {"role": role, "modality": "MG", "laterality": lat}
        elif modality == "US":
            out[s.key] = {"role": "us_bmode", "modality": "US"}
        elif modality == "MR":
            desc = t.get("SeriesDescription", "")
            role = next((r for rx, r in _DESC_RULES if rx.search(desc)), None)
            if s.b_value:
                role = "dwi"
            if role is None:
                dce.append(s)
            else:
                out[s.key] = {"role": role, "modality": "MR", "b_value": s.b_value if role == "dwi" else None}
        else:
            out[s.key] = {"role": None, "modality": modality}
    dce.sort(key=lambda s: (s.tags.get("AcquisitionTime") or s.tags.get("SeriesTime") or "",
                            int(s.tags.get("SeriesNumber") or 0)))
    if dce:
        has_pre = not dce[0].tags.get("ContrastBolusAgent")
        names = (["dce_pre"] if has_pre else []) + ["dce_early"] + ["dce_late"] * max(0, len(dce) - 1 - has_pre)
        if len(dce) - has_pre >= 2:
            names[-1] = "dce_late"
        for s, name in zip(dce, names, strict=False):
            out[s.key] = {"role": name, "modality": "MR"}
        # Phases between early and late are left unassigned (role None) unless overridden.
        for s in dce[len(names):]:
            out[s.key] = {"role": None, "modality": "MR"}
    return out


def read_overrides(path: str | Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: overrides file not found")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and "series_uid" not in rows[0]:
        raise InputError(f"{path}: overrides need a 'series_uid' column")
    out = {}
    for r in rows:
        values = {k: v.strip() for k, v in r.items() if k != "series_uid" and v and v.strip()}
        for k in ("b_value", "pixel_spacing_mm"):
            if k in values:
                values[k] = float(values[k])
        out[r["series_uid"].strip()] = values
    return out


def _read_series_image(s: DicomSeries, spacing_override: float | None) -> sitk.Image:
    import pydicom

    if s.tags.get("Modality") in ("MG", "US") or len(s.files) == 1:
        ds = pydicom.dcmread(s.files[0])
        try:
            pixels = ds.pixel_array
        except Exception as exc:  # pydicom raises many types for unreadable pixel data
            raise InputError(f"{s.files[0]}: cannot decode pixel data ({exc})") from None
        if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
            pixels = pixels[..., :3].mean(axis=-1)
        image = sitk.GetImageFromArray(np.asarray(pixels))
        spacing = spacing_override
        if spacing is None:
            ps = s.tags.get("PixelSpacing") or s.tags.get("ImagerPixelSpacing")
            if ps is None and s.tags.get("Modality") == "MG":
                raise InputError(f"{s.files[0]}: mammogram has neither PixelSpacing nor ImagerPixelSpacing; "
                                 "give pixel_spacing_mm for this series in the overrides file")
            spacing = (ps[1], ps[0]) if ps else None
        if spacing is not None:
            spacing = (spacing, spacing) if np.isscalar(spacing) else spacing
            image.SetSpacing(tuple(float(v) for v in spacing)[: image.GetDimension()] + (1.0,) * (image.GetDimension() - 2))
        return image
    reader = sitk.ImageSeriesReader()
    files = _sorted_slices(s.files, f"series {s.uid} ({s.files[0].parent})")
    reader.SetFileNames([str(f) for f in files])
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"series {s.uid} ({files[0].parent}): cannot read ({str(exc).strip().splitlines()[-1]})") from None


#: Largest departure of one slice gap from the median gap, as a fraction of it, still called even.
SPACING_TOLERANCE = 0.1


def _sorted_slices(files: list[Path], where: str) -> list[Path]:
    """Files in slice order; refuses a series whose slices are not evenly spaced.

    ITK stacks the slices with the spacing of the first two, so a missing slice would silently
    stretch the volume (a 2 mm series read as 3 mm) and shift every slice after the gap.
    """
    import pydicom

    def position(f):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        ipp = np.array([float(v) for v in getattr(ds, "ImagePositionPatient", [0, 0, 0])])
        iop = np.array([float(v) for v in getattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0])])
        normal = np.cross(iop[:3], iop[3:])
        return float(ipp @ normal), int(getattr(ds, "InstanceNumber", 0) or 0)

    keyed = sorted(((position(f), f) for f in files), key=lambda pf: pf[0])
    check_slice_spacing([p[0] for p, _ in keyed], where)
    return [f for _, f in keyed]


def check_slice_spacing(positions: list[float], where: str) -> None:
    """Raise :class:`InputError` unless the sorted slice positions are evenly spaced."""
    if len(positions) < 3:
        return
    gaps = np.diff(np.asarray(positions, float))
    median = float(np.median(gaps))
    if median <= 0 or np.any(gaps <= 1e-3 * max(median, 1e-6)):
        n_same = int(np.sum(gaps <= 1e-3 * max(median, 1e-6)))
        raise InputError(f"{where}: {n_same + 1} slices share a position (several phases or stacks in one "
                         "series?); split them into separate series before importing")
    bad = np.flatnonzero(np.abs(gaps - median) > SPACING_TOLERANCE * median)
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{where}: uneven slice spacing: {median:.3g} mm between most slices but {gaps[i]:.3g} mm "
                         f"between slices {i + 1} and {i + 2} ({bad.size} uneven gap(s); a slice is missing?); "
                         "the series is not imported")


def import_dicom(folder: str | Path, dest: str | Path, overrides: str | Path | None = None,
                 clinical: str | Path | None = None) -> tuple[StudyStore, list[str]]:
    """Convert a DICOM folder into a study; returns the store and the problems (series skipped)."""
    from .manifest import read_clinical

    series, problems = scan_dicom(folder)
    if not series:
        raise InputError(f"{folder}: no readable DICOM files found" + (f" ({problems[0]})" if problems else ""))
    over = read_overrides(overrides)
    dest = Path(dest)
    if (dest / "manifest.csv").exists():
        raise InputError(f"{dest}: already holds a study; import into a new folder")
    # Group series by study, guess roles within each study, map study dates to timepoints.
    by_study: dict[str, list[DicomSeries]] = {}
    for s in series.values():
        by_study.setdefault(s.tags["StudyInstanceUID"], []).append(s)
    roles: dict[str, dict[str, Any]] = {}
    for group in by_study.values():
        roles.update(guess_roles(group))
    patient_dates: dict[str, list[str]] = {}
    for s in series.values():
        patient_dates.setdefault(_patient_id(s), []).append(s.tags.get("StudyDate", ""))
    rows: list[dict[str, Any]] = []
    for s in sorted(series.values(), key=lambda s: (_patient_id(s), s.tags.get("StudyDate", ""), s.key)):
        o = {**over.get(s.uid, {}), **over.get(s.key, {})}
        if o.get("skip", "").lower() in ("1", "yes", "true"):
            continue
        info = {**roles.get(s.key, {}), **{k: v for k, v in o.items() if k in ("role", "b_value", "laterality")}}
        pid = o.get("patient_id") or _patient_id(s)
        dates = sorted(set(patient_dates[_patient_id(s)]))
        sequence = TIMEPOINT_SEQUENCES.get(len(dates))
        timepoint = o.get("timepoint") or (sequence[dates.index(s.tags.get("StudyDate", ""))] if sequence else None)
        where = f"series {s.uid} ({s.tags.get('SeriesDescription') or 'no description'}, {s.files[0].parent})"
        if info.get("role") not in ROLES:
            problems.append(f"{where}: cannot tell its role; set it in the overrides file (series_uid,role)")
            continue
        if timepoint is None:
            problems.append(f"{where}: patient has {len(dates)} study dates; set the timepoint in the overrides file")
            continue
        try:
            image = _read_series_image(s, o.get("pixel_spacing_mm"))
        except InputError as exc:
            problems.append(str(exc))
            continue
        key = image_key(info["role"], info.get("b_value"), info.get("laterality"))
        rel = Path("images") / pid / timepoint / f"{key}.nii.gz"
        if not within(dest, dest / rel):
            problems.append(f"{where}: patient id {pid!r} would store the series outside the study; skipped")
            continue
        if (dest / rel).exists():
            problems.append(f"{where}: a second series for {pid}/{timepoint}/{key}; skipped (choose one with 'skip')")
            continue
        write_image(image, dest / rel)
        if s.b_value is None and len(s.files) > 1:  # what a DICOM SEG of this series must reference
            write_series_record(dest, s.uid, s.files)
        rows.append({"patient_id": pid, "timepoint": timepoint, "kind": "image", "path": rel.as_posix(),
                     "modality": ROLES[info["role"]][0], "role": info["role"], "b_value": info.get("b_value"),
                     "laterality": info.get("laterality"), "series_uid": s.uid,
                     "description": s.tags.get("SeriesDescription") or None,
                     "pixel_spacing_mm": float(image.GetSpacing()[0]) if info["role"].startswith("mg_") else None,
                     "date": s.tags.get("StudyDate") or None})
    if not rows:
        raise InputError(f"{folder}: no series could be imported:\n" + "\n".join(problems[:20]))
    store = StudyStore.create(dest, rows, read_clinical(clinical) if clinical else None)
    store.audit("import-dicom", details={"series": len(rows), "problems": problems})
    return store, problems


def _patient_id(s: DicomSeries) -> str:
    pid = re.sub(r"[^A-Za-z0-9_.-]", "_", s.tags.get("PatientID") or "anonymous")
    return "anonymous" if pid.strip(".") == "" else pid  # "." and ".." would be folder escapes
