"""The cohort data model: Patient -> Timepoint -> Image / Segmentation.

Plain dataclasses with no I/O, so every stage (radiomics, reader sessions, models, Slicer panels)
shares one vocabulary.  Files are referenced by paths relative to the study folder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Timepoints in chronological order: id -> human label.
TIMEPOINTS: dict[str, str] = {
    "pre": "pre-NAC (baseline)",
    "c2": "after cycle 2",
    "c4": "after cycle 4",
    "post": "post-NAC / pre-surgery",
}

MODALITIES = ("MR", "US", "MG")

# Series roles: id -> (modality, description).
ROLES: dict[str, tuple[str, str]] = {
    "dce_pre": ("MR", "DCE pre-contrast"),
    "dce_early": ("MR", "DCE early post-contrast"),
    "dce_late": ("MR", "DCE late post-contrast"),
    "sub": ("MR", "DCE subtraction (early - pre)"),
    "t2w": ("MR", "T2-weighted"),
    "dwi": ("MR", "diffusion-weighted (with b-value)"),
    "adc": ("MR", "apparent diffusion coefficient map"),
    "us_bmode": ("US", "ultrasound B-mode"),
    "mg_cc": ("MG", "mammogram, cranio-caudal view"),
    "mg_mlo": ("MG", "mammogram, medio-lateral oblique view"),
}

SEGMENTATION_METHODS = ("manual", "monai", "ftv", "consensus", "reference")
#: Which delineation stands for the tumour when several could (``Timepoint.reference_segmentation``):
#: an expert reference, a consensus of readers, one reader's outline, then the automatic ones.
METHOD_PRIORITY = ("reference", "consensus", "manual", "monai", "ftv")
LATERALITIES = ("L", "R")
SUBTYPES = ("HR+/HER2-", "HR+/HER2+", "HR-/HER2+", "TN")

# Clinical variables (inputs) and outcomes (targets) of the clinical table, with their types.
CLINICAL_VARIABLES: dict[str, str] = {
    "age": "number",
    "menopausal_status": "string",  # pre / post
    "er": "binary",
    "pr": "binary",
    "her2": "binary",
    "ki67": "number",  # percent
    "subtype": "string",
    "ct": "string",  # cT1..cT4
    "cn": "string",  # cN0..cN3
    "regimen": "string",
}
OUTCOMES: dict[str, str] = {
    "pcr": "binary",
    "axillary_pcr": "binary",
    "miller_payne": "integer",  # grade 1..5
    "rcb_index": "number",
    "rcb_class": "string",  # 0, I, II, III
}


def timepoint_order(name: str) -> int:
    """Chronological rank of a timepoint id (unknown ids sort last)."""
    order = list(TIMEPOINTS)
    return order.index(name) if name in order else len(order)


def image_key(role: str, b_value: float | None = None, laterality: str | None = None) -> str:
    """Stable identifier of an image within a timepoint, used in feature column names.

    ``dwi`` with b=800 -> ``dwi_b800``; mammogram CC of the left breast -> ``mg_cc_L``.
    """
    key = role
    if role == "dwi" and b_value is not None and not _isnan(b_value):
        key += f"_b{int(round(float(b_value)))}"
    if laterality and role.startswith("mg_"):
        key += f"_{laterality}"
    return key


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


@dataclass
class Image:
    path: str
    modality: str
    role: str
    b_value: float | None = None
    laterality: str | None = None
    pixel_spacing_mm: float | None = None  # mammography: in-plane pixel size if the file lacks it
    series_uid: str | None = None
    description: str | None = None

    @property
    def key(self) -> str:
        return image_key(self.role, self.b_value, self.laterality)


@dataclass
class Segmentation:
    path: str
    reader: str
    method: str = "manual"
    label: int = 1
    reference: str = "dce_early"  # image key whose grid the mask shares
    created: str | None = None


@dataclass
class Timepoint:
    name: str
    date: str | None = None
    cycle: int | None = None
    images: list[Image] = field(default_factory=list)
    segmentations: list[Segmentation] = field(default_factory=list)

    def image(self, key: str) -> Image:
        for img in self.images:
            if img.key == key or (img.role == key and sum(i.role == key for i in self.images) == 1):
                return img
        raise KeyError(f"timepoint {self.name!r} has no image {key!r} (has: {[i.key for i in self.images]})")

    def has_image(self, key: str) -> bool:
        try:
            self.image(key)
        except KeyError:
            return False
        return True

    def segmentations_by(self, reader: str | None = None, method: str | None = None) -> list[Segmentation]:
        return [
            s
            for s in self.segmentations
            if (reader is None or s.reader == reader) and (method is None or s.method == method)
        ]

    def reference_segmentation(self, reader: str | None = None, method: str | None = None,
                               image: str | None = None) -> Segmentation | None:
        """The one segmentation that stands for the tumour here, by a rule that does not depend on
        the manifest's row order; None when none matches ``reader``/``method``/``image`` (its
        reference image key).

        Rule: the first method of ``METHOD_PRIORITY``, then the first reader in alphabetical order.
        Several files of that reader and method (outlines on two images, a duplicated row) are
        ambiguous and refused with their paths: pass ``image`` to choose.
        """
        from ..errors import InputError

        found = [s for s in self.segmentations_by(reader, method) if image is None or s.reference == image]
        if not found:
            return None

        def rank(s: Segmentation) -> tuple[int, str]:
            order = METHOD_PRIORITY.index(s.method) if s.method in METHOD_PRIORITY else len(METHOD_PRIORITY)
            return order, s.reader

        best = min(rank(s) for s in found)
        tied = sorted((s for s in found if rank(s) == best), key=lambda s: s.path)
        if len(tied) > 1:
            raise InputError(f"timepoint {self.name}: reader {tied[0].reader!r} ({tied[0].method}) has "
                             f"{len(tied)} segmentations ({', '.join(s.path for s in tied)}, on "
                             f"{', '.join(sorted({s.reference for s in tied}))}); choose one by its image or "
                             "remove the extra manifest row")
        return tied[0]


@dataclass
class Patient:
    patient_id: str
    clinical: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, Any] = field(default_factory=dict)
    timepoints: dict[str, Timepoint] = field(default_factory=dict)

    def timepoint(self, name: str) -> Timepoint:
        from ..errors import MissingTimepointError

        if name not in self.timepoints:
            raise MissingTimepointError(
                f"patient {self.patient_id} has no timepoint {name!r} (has: {sorted(self.timepoints, key=timepoint_order)})"
            )
        return self.timepoints[name]

    def ordered_timepoints(self) -> list[Timepoint]:
        return sorted(self.timepoints.values(), key=lambda t: timepoint_order(t.name))


@dataclass
class Cohort:
    """All patients of a study, keyed by pseudonymous id."""

    patients: dict[str, Patient] = field(default_factory=dict)

    def __iter__(self):
        return iter(self.patients.values())

    def __len__(self) -> int:
        return len(self.patients)

    def __getitem__(self, patient_id: str) -> Patient:
        return self.patients[patient_id]

    def readers(self) -> list[str]:
        return sorted({s.reader for p in self for t in p.timepoints.values() for s in t.segmentations})

    def timepoint_names(self) -> list[str]:
        return sorted({t for p in self for t in p.timepoints}, key=timepoint_order)

    def select_segmentations(self, *, patients=None, timepoints=None, readers=None, methods=None):
        """``(patient, timepoint, segmentation)`` of a subset in study order (a filter left None keeps all)."""
        for patient in self:
            if patients and patient.patient_id not in patients:
                continue
            for tp in patient.ordered_timepoints():
                if timepoints and tp.name not in timepoints:
                    continue
                for seg in tp.segmentations:
                    if (readers and seg.reader not in readers) or (methods and seg.method not in methods):
                        continue
                    yield patient, tp, seg

    def to_dict(self) -> dict[str, Any]:
        return {pid: asdict(p) for pid, p in self.patients.items()}
