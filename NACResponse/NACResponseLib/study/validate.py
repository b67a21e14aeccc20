"""Study validation: every file readable, masks on their image's grid, timepoints and outcomes present.

``validate_study`` never stops at the first problem: it checks everything and returns a report
(errors make work impossible, warnings deserve a look).  ``write_validation_report`` stores it as
JSON and Markdown under ``<study>/reports/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import NACError
from ..imageio import read_image, read_mask
from ..provenance import collect, strict_json
from .model import CLINICAL_VARIABLES, OUTCOMES
from .store import StudyStore


def validate_study(store: StudyStore, required_timepoints: tuple[str, ...] = ("pre",),
                   progress=None) -> dict[str, Any]:
    cohort = store.cohort
    errors: list[str] = []
    warnings: list[str] = []
    counts = {"patients": len(cohort), "images": 0, "segmentations": 0}
    for patient in cohort:
        pid = patient.patient_id
        if not patient.timepoints:
            warnings.append(f"{pid}: in the clinical table but has no images")
        for tp in required_timepoints:
            if patient.timepoints and tp not in patient.timepoints:
                errors.append(f"{pid}: missing timepoint {tp!r}")
        for tp in patient.ordered_timepoints():
            loaded = {}
            for img in tp.images:
                counts["images"] += 1
                try:
                    image = read_image(store.path(img.path))
                except NACError as exc:
                    errors.append(f"{pid}/{tp.name}/{img.key}: {exc}")
                    continue
                loaded[img.key] = image
                dim = image.GetDimension()
                if img.modality == "MG" and dim != 2:
                    errors.append(f"{pid}/{tp.name}/{img.key}: a mammogram must be 2D, {img.path} is {dim}D")
                if img.modality == "MR" and dim != 3:
                    errors.append(f"{pid}/{tp.name}/{img.key}: an MR series must be 3D, {img.path} is {dim}D")
                if img.modality == "MG" and image.GetSpacing()[0] == 1.0 and img.pixel_spacing_mm is None:
                    warnings.append(f"{pid}/{tp.name}/{img.key}: pixel spacing 1.0 mm looks like a missing spacing; "
                                    "set pixel_spacing_mm in the manifest")
            for seg in tp.segmentations:
                counts["segmentations"] += 1
                ref = loaded.get(seg.reference)
                if ref is None:
                    errors.append(f"{pid}/{tp.name}: segmentation {seg.path} refers to image {seg.reference!r}, "
                                  "which is missing or unreadable")
                    continue
                ref_path = store.path(tp.image(seg.reference).path)
                try:
                    read_mask(store.path(seg.path), label=seg.label, reference=ref, reference_name=str(ref_path))
                except NACError as exc:
                    errors.append(f"{pid}/{tp.name}/{seg.reader}: {exc}")
            if progress:
                progress.update(0, f"{pid}/{tp.name}")
        if patient.timepoints and not patient.outcomes:
            warnings.append(f"{pid}: no clinical row (outcomes unknown)")
        elif patient.timepoints:
            missing = [k for k in OUTCOMES if patient.outcomes.get(k) is None]
            if missing:
                warnings.append(f"{pid}: outcomes missing: {', '.join(missing)}")
        if progress:
            progress.update(1, pid)
    extra = sorted({k for p in cohort for k in p.clinical if k not in CLINICAL_VARIABLES})
    if extra:
        warnings.append(f"{store.clinical_path}: columns {extra} are not clinical variables the models know; "
                        "kept as text in the study, not used by the models")
    pcr = [p.outcomes.get("pcr") for p in cohort if p.outcomes.get("pcr") is not None]
    summary = {
        "counts": counts,
        "readers": cohort.readers(),
        "timepoints": cohort.timepoint_names(),
        "class_balance": {"pcr": {"1": sum(pcr), "0": len(pcr) - sum(pcr)}} if pcr else {},
        "errors": errors,
        "warnings": warnings,
        "valid": not errors,
    }
    return summary


def write_validation_report(store: StudyStore, report: dict[str, Any]) -> Path:
    """reports/validation.json (with provenance) and reports/validation.md; returns the .md path."""
    out = store.reports_dir
    record = {**report, "provenance": collect(step="validate", inputs=[store.manifest_path], base=store.root)}
    atomic_write_text(out / "validation.json", strict_json(record, indent=2, default=str))
    c = report["counts"]
    lines = [
        "# Study validation report", "",
        f"Study: `{store.root}`", "",
        f"- patients: {c['patients']}, images: {c['images']}, segmentations: {c['segmentations']}",
        f"- timepoints: {', '.join(report['timepoints'])}; readers: {', '.join(report['readers']) or 'none'}",
        f"- pCR balance: {report['class_balance'].get('pcr', 'unknown')}",
        f"- result: {'VALID' if report['valid'] else 'INVALID'} ({len(report['errors'])} errors, "
        f"{len(report['warnings'])} warnings)", "",
    ]
    for title, items in (("Errors", report["errors"]), ("Warnings", report["warnings"])):
        if items:
            lines += [f"## {title}", ""] + [f"- {i}" for i in items] + [""]
    path = out / "validation.md"
    atomic_write_text(path, "\n".join(lines))
    store.audit("validate", details={"valid": report["valid"], "errors": len(report["errors"])})
    return path
