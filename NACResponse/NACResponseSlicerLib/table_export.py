"""Export... of the Features panel's table (CSV or XLSX), Qt-free so CI tests it; the core writes the file."""

from __future__ import annotations

from pathlib import Path

FILE_FILTER = "CSV, UTF-8 (*.csv);;Excel workbook (*.xlsx)"
SUFFIXES = (".csv", ".xlsx")


def export_target(path: str, selected_filter: str = "") -> Path:
    """The file to write: the chosen name, with the filter's suffix when the user typed none."""
    target = Path(path)
    if target.suffix.lower() in SUFFIXES:
        return target
    suffix = ".xlsx" if "xlsx" in selected_filter.lower() else ".csv"
    return target.with_name(target.name + suffix)


def export_result_table(store, name: str, path: str, selected_filter: str = "") -> Path:
    """Write the study table ``name`` to ``path`` (the Save dialog already confirmed any overwrite)."""
    from NACResponseLib.study.tables_export import export_table_file

    if not name:
        raise ValueError("Choose a table.")
    return export_table_file(store, name, export_target(path, selected_filter), overwrite=True)
