"""Study commands: ``import``, ``validate``, ``synthetic`` and ``demo``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import comma_list


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import", help="create a study folder from a folder convention, a manifest.csv or DICOM",
        description="Create a study folder (manifest.csv, clinical.csv, images/, catalogue.sqlite). "
        "SOURCE is a folder in the documented convention, a manifest.csv, or (with --dicom) a DICOM folder.")
    p.add_argument("source", type=Path)
    p.add_argument("study", type=Path, help="new study folder to create")
    p.add_argument("--dicom", action="store_true", help="SOURCE is a folder of DICOM files")
    p.add_argument("--overrides", type=Path, help="DICOM: CSV with series_uid and role/timepoint/... overrides")
    p.add_argument("--clinical", type=Path, help="clinical CSV (default: clinical.csv next to the source)")
    p.add_argument("--no-copy", action="store_true", help="reference files in place instead of copying them")
    p.set_defaults(func=_import)

    p = subparsers.add_parser("validate", help="check every file, mask geometry, timepoints and outcomes",
                              description="Validate a study and write reports/validation.{json,md}. "
                              "Exit code 1 when errors are found.")
    p.add_argument("study", type=Path)
    p.add_argument("--require", default="pre", help="comma-separated timepoints every patient must have")
    p.set_defaults(func=_validate)

    p = subparsers.add_parser("synthetic", help="generate the synthetic longitudinal cohort (folder convention)",
                              description="Write a seeded synthetic cohort with known ground truth.")
    p.add_argument("out", type=Path)
    p.add_argument("--patients", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timepoints", default="pre,c2,post", help="comma-separated, e.g. pre,c2,c4,post")
    p.set_defaults(func=_synthetic)

    p = subparsers.add_parser("demo", help="run the whole pipeline on the synthetic cohort (offline)",
                              description="Generate the synthetic cohort, import and validate it, then run "
                              "every analysis stage; outputs and report.html go to --out.")
    p.add_argument("--out", type=Path, default=Path("demo_output"))
    p.add_argument("--patients", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="parallel worker processes")
    p.add_argument("--quick", action="store_true", help="small settings (used by the tests)")
    p.add_argument("--stages", help="comma-separated subset of stages (e.g. study,radiomics)")
    p.set_defaults(func=_demo)


def _import(args: argparse.Namespace) -> int:
    from ..study.importers import import_folder, import_manifest

    problems: list[str] = []
    if args.dicom:
        from ..study.dicom_import import import_dicom

        store, problems = import_dicom(args.source, args.study, args.overrides, args.clinical)
    elif args.source.is_file() and args.source.suffix == ".csv":
        store = import_manifest(args.source, args.study, args.clinical, copy=not args.no_copy)
    else:
        store = import_folder(args.source, args.study, copy=not args.no_copy)
    cohort = store.cohort
    print(f"imported {len(cohort)} patients, timepoints {cohort.timepoint_names()}, readers {cohort.readers()} "
          f"into {store.root}")
    for problem in problems:
        print(f"skipped: {problem}")
    return 1 if problems else 0


def _validate(args: argparse.Namespace) -> int:
    from ..progress import Progress
    from ..study.store import StudyStore
    from ..study.validate import validate_study, write_validation_report

    store = StudyStore(args.study)
    with Progress(len(store.cohort), "validate") as progress:
        report = validate_study(store, tuple(comma_list(args.require) or ()), progress)
    path = write_validation_report(store, report)
    print(f"{'valid' if report['valid'] else 'INVALID'}: {len(report['errors'])} errors, "
          f"{len(report['warnings'])} warnings; report: {path}")
    for e in report["errors"][:20]:
        print(f"error: {e}")
    return 0 if report["valid"] else 1


def _synthetic(args: argparse.Namespace) -> int:
    from ..demo.synthetic import generate_cohort

    out = generate_cohort(args.out, n_patients=args.patients, seed=args.seed,
                          timepoints=tuple(comma_list(args.timepoints) or ()))
    print(f"synthetic cohort of {args.patients} patients written to {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ..demo.run import DemoContext, run_demo

    if args.out.exists() and any(args.out.iterdir()) and not (args.out / "demo_summary.json").exists() \
            and not (args.out / "study").exists():
        from ..errors import InputError

        raise InputError(f"{args.out}: exists and is not a demo output folder; choose another --out")
    ctx = DemoContext(out_dir=args.out, n_patients=args.patients, seed=args.seed, jobs=args.jobs, quick=args.quick)
    summary = run_demo(ctx, comma_list(args.stages))
    failed = [k for k, v in summary["stages"].items() if v["status"] != "ok"]
    print(json.dumps({k: v["status"] for k, v in summary["stages"].items()}))
    print(f"demo outputs in {args.out.resolve()} (report.html, demo_summary.json, study/)")
    return 1 if failed else 0
