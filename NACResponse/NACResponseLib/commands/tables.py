"""``nacresponse tables``: list the study's result tables, show a slice, export them (CSV/XLSX/Parquet)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import comma_list


def register(subparsers) -> None:
    p = subparsers.add_parser("tables", help="result tables: list, show, export (CSV, XLSX, Parquet, pyradiomics)",
                              description="The study's result tables (tables/*.parquet) for SPSS, R, Excel and "
                              "pyradiomics scripts.")
    sub = p.add_subparsers(dest="tables_command", metavar="ACTION")
    sub.required = True

    q = sub.add_parser("list", help="tables with rows, columns, the step that made them and when")
    q.add_argument("study", type=Path)
    q.set_defaults(func=_list)

    q = sub.add_parser("show", help="print a readable slice of one table")
    q.add_argument("study", type=Path)
    q.add_argument("name", help="table name (see 'tables list')")
    q.add_argument("--patients", help="comma-separated patient ids")
    q.add_argument("--columns", help="comma-separated columns (id columns are kept)")
    q.add_argument("--rows", type=int, default=40, help="at most this many rows (default 40)")
    q.set_defaults(func=_show)

    q = sub.add_parser("export", help="write tables as CSV, XLSX (one sheet each + provenance), Parquet or "
                       "pyradiomics batch CSV",
                       description="CSV: UTF-8, header, '.' decimal mark, empty cells for missing values. "
                       "XLSX needs openpyxl (pip install 'nacresponse[xlsx]'). pyradiomics: one row per "
                       "image/mask pair with Image, Mask, Label, diagnostics_* and feature columns.")
    q.add_argument("study", type=Path)
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("name", nargs="?", help="table name")
    which.add_argument("--all", action="store_true", help="every table")
    q.add_argument("--format", required=True, choices=("csv", "xlsx", "parquet", "pyradiomics"))
    q.add_argument("--out", required=True, type=Path, help="output folder (must be empty unless --overwrite)")
    q.add_argument("--overwrite", action="store_true", help="write into a folder that already holds files")
    q.set_defaults(func=_export)


def _store(args):
    from ..study.store import StudyStore

    return StudyStore(args.study)


def _list(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..study.tables_export import table_summaries

    rows = table_summaries(_store(args))
    if not rows:
        print("no tables yet")
        return 0
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def _show(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..study.tables_export import table_slice

    frame = table_slice(_store(args), args.name, patients=comma_list(args.patients), columns=comma_list(args.columns))
    with pd.option_context("display.max_columns", 30, "display.width", 160):
        print(frame.head(args.rows).to_string(index=False, max_cols=30))
    if len(frame) > args.rows:
        print(f"... {len(frame) - args.rows} more rows ({len(frame)} x {frame.shape[1]})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..study.tables_export import export_tables

    paths = export_tables(_store(args), None if args.all else [args.name], args.format, args.out,
                          overwrite=args.overwrite)
    for path in paths:
        print(path)
    return 0
