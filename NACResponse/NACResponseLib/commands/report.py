"""``nacresponse report case``: one self-contained page per patient for the tumour board."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="per-case report a clinician can read and forward (HTML, PDF)")
    sub = p.add_subparsers(dest="report_command", metavar="KIND")
    sub.required = True
    c = sub.add_parser("case", help="one patient: images with delineations, size and RECIST over time, model "
                       "predictions, Grad-CAM, mammograms (MC extent, RESMIN), provenance",
                       description="Writes one self-contained HTML page (figures embedded). Parts the study "
                       "does not have yet are stated on the page with the command that makes them.")
    c.add_argument("study", type=Path)
    c.add_argument("--patient", required=True, help="patient id (column patient_id of manifest.csv)")
    c.add_argument("--out", type=Path, help="HTML file (default <study>/reports/cases/<patient>.html)")
    c.add_argument("--model", action="append", type=Path, default=[], metavar="DIR",
                   help="a saved model or DLR bundle outside <study>/models to include (repeatable)")
    c.add_argument("--pdf", action="store_true", help="also write a PDF beside the HTML page (matplotlib)")
    c.set_defaults(func=_case)


def _case(args) -> int:
    from ..reporting.case import write_case_report
    from ..study.store import StudyStore

    res = write_case_report(StudyStore(args.study), args.patient, args.out, pdf=args.pdf, models=args.model)
    print(f"case report: {res['html']}")
    if res["pdf"]:
        print(f"PDF: {res['pdf']}")
    for problem in res["problems"]:
        print(f"could not include: {problem}")
    return 1 if res["problems"] else 0
