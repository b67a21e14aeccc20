"""Which (patient, timepoint, reader) ROIs the deep stages process, and how their inputs are read."""

from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from ..columns import reader_selected, wide_reader_ids
from ..errors import MissingTimepointError, NACError
from ..imageio import read_image, read_mask
from ..study.model import ROLES, Cohort, Image, Segmentation, Timepoint, timepoint_order
from ..study.store import StudyStore

#: DCE early post-contrast, then ADC (or DWI when there is no ADC map), then T2.
DEFAULT_CHANNELS = ("dce_early", "adc|dwi", "t2w")


@dataclass(frozen=True)
class Case:
    patient_id: str
    timepoint: str
    reader: str  # wide-table reader id (``R1`` or ``R1.monai``, see NACResponseLib.columns)
    segmentation: Segmentation

    @property
    def key(self) -> str:
        return f"{self.patient_id}__{self.timepoint}__{self.reader}"

    @property
    def name(self) -> str:
        return f"{self.patient_id}/{self.timepoint}/{self.reader}"


def _modality(timepoint: Timepoint, spec: str) -> str | None:
    """Modality of the image a channel spec names: the timepoint's image, else the role's own
    (so an ultrasound-only timepoint is not mistaken for one that lacks its MR series)."""
    for key in spec.split("|"):
        if timepoint.has_image(key.strip()):
            return timepoint.image(key.strip()).modality
    for key in spec.split("|"):
        if key.strip() in ROLES:
            return ROLES[key.strip()][0]
    return None


def cohort_cases(cohort: Cohort, *, readers: list[str] | None = None,
                 timepoints: list[str] | None = None, channel: str | None = None) -> list[Case]:
    """All segmentations in the cohort (optionally filtered), one Case each.

    ``readers`` may name a reader (``R1``: all their methods) or a wide id (``R1.monai``).
    ``channel`` (the first channel spec) keeps only masks drawn on an image of the same modality,
    so MR features are not computed from a mammogram's ROI (and vice versa).
    """
    wide_ids = wide_reader_ids((s.reader, s.method) for p in cohort for t in p.timepoints.values()
                               for s in t.segmentations)
    cases = []
    for p in sorted(cohort, key=lambda p: p.patient_id):
        for t in p.ordered_timepoints():
            if timepoints and t.name not in timepoints:
                continue
            for s in t.segmentations:
                wide = wide_ids[(s.reader, s.method)]
                if not reader_selected(readers, s.reader, wide):
                    continue
                if channel is not None:
                    want, have = _modality(t, channel), _modality(t, s.reference)
                    if want is not None and have is not None and want != have:
                        continue
                cases.append(Case(p.patient_id, t.name, wide, s))
    cases.sort(key=lambda c: (c.patient_id, timepoint_order(c.timepoint), c.reader))
    return cases


def resolve_image(timepoint: Timepoint, spec: str, where: str) -> Image:
    """The image for a channel spec; ``"adc|dwi"`` takes the first key that exists."""
    for key in spec.split("|"):
        if timepoint.has_image(key.strip()):
            return timepoint.image(key.strip())
    raise MissingTimepointError(f"{where}: no image for channel {spec!r} at timepoint {timepoint.name!r} "
                                f"(images there: {[i.key for i in timepoint.images]})")


def read_case_images(store: StudyStore, case: Case, channels: tuple[str, ...] | list[str]) -> tuple[list[sitk.Image], list[str]]:
    """Read the channel images of a case (errors name the patient, timepoint and file)."""
    tp = store.cohort[case.patient_id].timepoint(case.timepoint)
    images, names = [], []
    for spec in channels:
        img = resolve_image(tp, spec, case.name)
        images.append(read_image(store.path(img.path)))
        names.append(img.key)
    return images, names


def input_paths(store: StudyStore, cases: list[Case], channels) -> list:
    """The image and mask files behind ``cases`` (for provenance hashes); unresolvable ones are skipped."""
    paths = {}
    for case in cases:
        tp = store.cohort[case.patient_id].timepoint(case.timepoint)
        for spec in channels:
            try:
                img = resolve_image(tp, spec, case.name)
            except MissingTimepointError:
                continue
            paths[img.path] = store.path(img.path)
        paths[case.segmentation.path] = store.path(case.segmentation.path)
    return [paths[k] for k in sorted(paths)]


def read_case_mask(store: StudyStore, case: Case) -> sitk.Image:
    """The case's tumour mask, checked for emptiness and its label (InputError names the file)."""
    seg = case.segmentation
    return read_mask(store.path(seg.path), label=seg.label)


def describe_failure(case: Case, exc: BaseException) -> dict[str, str]:
    """One row of a failure list; unexpected exceptions keep their type name."""
    message = str(exc) if isinstance(exc, NACError) else f"{type(exc).__name__}: {exc}"
    if case.name not in message:
        message = f"{case.name}: {message}"
    return {"patient_id": case.patient_id, "timepoint": case.timepoint, "reader": case.reader, "error": message}
