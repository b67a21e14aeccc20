"""Demo stage: generate the synthetic cohort, import it as a study, validate it."""

from __future__ import annotations

import html

from ...study.importers import import_folder
from ...study.store import StudyStore
from ...study.validate import validate_study, write_validation_report
from ..synthetic import generate_cohort

TITLE = "Synthetic study: generate, import, validate"


def run(ctx) -> dict:
    source = ctx.out_dir / "synthetic_source"
    study_dir = ctx.out_dir / "study"
    if (study_dir / "manifest.csv").exists():  # finished work is reused, never overwritten
        ctx.study = StudyStore(study_dir)
    else:
        if not (source / "ground_truth.json").exists():
            generate_cohort(source, n_patients=ctx.n_patients, seed=ctx.seed)
        ctx.study = import_folder(source, study_dir)
    ctx.source_dir = source
    report = validate_study(ctx.study)
    md = write_validation_report(ctx.study, report)
    cohort = ctx.study.cohort
    ctx.add_section(TITLE, (
        f"<p>{len(cohort)} patients, timepoints {', '.join(cohort.timepoint_names())}, readers "
        f"{', '.join(cohort.readers())}. Validation: <b>{'valid' if report['valid'] else 'INVALID'}</b> "
        f"({len(report['errors'])} errors, {len(report['warnings'])} warnings); pCR balance "
        f"{html.escape(str(report['class_balance'].get('pcr')))}. Report: <code>{html.escape(str(md))}</code>; "
        f"catalogue: <code>{html.escape(str(ctx.study.catalogue_path))}</code>.</p>"))
    return {"patients": len(cohort), "valid": report["valid"], "errors": len(report["errors"]),
            "validation_report": str(md)}
