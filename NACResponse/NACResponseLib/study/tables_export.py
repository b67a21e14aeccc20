"""Result tables out of the study: list, show a slice, export as CSV / XLSX / Parquet / pyradiomics CSV.

The study keeps tables as Parquet with provenance embedded (store.py); statistics packages and
pyradiomics scripts want other files.  Rules of every export:

* CSV: UTF-8 with a header row, "." as the decimal mark, missing values as empty cells.
* XLSX (optional ``openpyxl``): one sheet per table plus a ``provenance`` sheet (versions,
  parameters, input hashes of every table).  Sheet names are cut to Excel's 31 characters; the
  provenance sheet names the table of each sheet.
* ``pyradiomics``: the batch-CSV layout pyradiomics itself writes (``Image``, ``Mask``, ``Label``
  and the other case columns, then ``diagnostics_*``, then the features), one row per image/mask
  pair, for tables keyed by ROI (patient, timepoint, image, reader, method, label).
* Nothing is partially written: files are made in a hidden folder beside ``out`` and moved in
  when all of them are complete; a non-empty ``out`` is refused unless ``overwrite``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..provenance import strict_json

FORMATS = ("csv", "xlsx", "parquet", "pyradiomics")
ROI_COLUMNS = ("patient_id", "timepoint", "image", "reader", "method", "label")
PROVENANCE_SHEET = "provenance"
XLSX_MAX_COLUMNS, XLSX_MAX_ROWS = 16384, 1048576


def table_names(store) -> list[str]:
    """Names of the study's result tables (the Parquet files in ``tables/``)."""
    if not store.tables_dir.is_dir():
        return []
    return sorted(p.name[: -len(".parquet")] for p in store.tables_dir.glob("*.parquet") if not p.name.startswith("."))


def check_table(store, name: str) -> str:
    """``name`` if the study has that table, else an error that lists the tables it has."""
    names = table_names(store)
    if name not in names:
        have = ", ".join(names) if names else "none yet: run a step that makes one"
        raise InputError(f"{store.tables_dir}: no table named {name!r} (tables: {have})")
    return name


def table_summaries(store) -> list[dict[str, Any]]:
    """Per table: rows, columns, the step that made it, when, and its software versions."""
    import pyarrow.parquet as pq

    out = []
    for name in table_names(store):
        meta = pq.read_metadata(store.table_path(name))
        prov = store.table_provenance(name)
        versions = prov.get("versions") or {}
        out.append({"name": name, "rows": meta.num_rows, "columns": meta.num_columns,
                    "step": prov.get("step", ""), "created": prov.get("created", ""),
                    "inputs": len(prov.get("inputs_sha256") or {}),
                    "nacresponse": versions.get("nacresponse", "")})
    return out


def table_slice(store, name: str, *, patients: list[str] | None = None, columns: list[str] | None = None):
    """Rows of ``patients`` (if given) and the named ``columns`` (id columns are kept in front)."""
    frame = store.read_table(check_table(store, name))
    if patients:
        if "patient_id" not in frame.columns:
            raise InputError(f"table {name!r} has no patient_id column; --patients does not apply")
        unknown = sorted(set(patients) - set(frame["patient_id"].astype(str)))
        if unknown:
            raise InputError(f"table {name!r}: patients not in the table: {unknown}")
        frame = frame[frame["patient_id"].astype(str).isin(patients)]
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            sample = ", ".join(map(str, list(frame.columns)[:12]))
            raise InputError(f"table {name!r}: no column(s) {missing} (first columns: {sample}"
                             f"{', ...' if frame.shape[1] > 12 else ''})")
        ids = [c for c in frame.columns if c in ROI_COLUMNS and c not in columns]
        frame = frame[ids + list(columns)]
    return frame


# ---- writers ----------------------------------------------------------------------------------

def write_csv(frame, path: Path) -> None:
    frame.to_csv(path, index=False, encoding="utf-8", na_rep="", decimal=".", lineterminator="\n")


def provenance_rows(name: str, sheet: str | None, provenance: dict[str, Any]) -> list[dict[str, str]]:
    """Flatten a provenance record to (table, sheet, section, key, value) rows."""
    rows = []
    for section, value in provenance.items():
        if isinstance(value, dict):
            items = value.items() if value else [("", "")]
            rows += [{"table": name, "sheet": sheet or "", "section": section, "key": str(k),
                      "value": v if isinstance(v, str) else strict_json(v, default=str)} for k, v in items]
        else:
            rows.append({"table": name, "sheet": sheet or "", "section": section, "key": "",
                         "value": value if isinstance(value, str) else strict_json(value, default=str)})
    return rows


def _sheet_names(names: list[str]) -> dict[str, str]:
    """Unique Excel sheet names (<= 31 characters, never ``provenance``)."""
    taken = {PROVENANCE_SHEET}
    out = {}
    for name in names:
        base = name[:31]
        sheet, k = base, 1
        while sheet.lower() in {t.lower() for t in taken}:
            k += 1
            sheet = f"{base[: 31 - len(str(k)) - 1]}~{k}"
        taken.add(sheet)
        out[name] = sheet
    return out


def write_xlsx(frames: dict[str, Any], provenance: dict[str, dict[str, Any]], path: Path) -> None:
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise InputError("XLSX export needs openpyxl: pip install 'nacresponse[xlsx]' (or export --format csv)"
                         ) from None
    import pandas as pd

    for name, frame in frames.items():
        if frame.shape[1] > XLSX_MAX_COLUMNS or frame.shape[0] + 1 > XLSX_MAX_ROWS:
            raise InputError(f"table {name!r} has {frame.shape[0]} rows x {frame.shape[1]} columns; an XLSX sheet "
                             f"holds at most {XLSX_MAX_ROWS - 1} x {XLSX_MAX_COLUMNS}: export it as csv or parquet")
    sheets = _sheet_names(list(frames))
    prov = [r for name in frames for r in provenance_rows(name, sheets[name], provenance[name])]
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in frames.items():
            frame.to_excel(writer, sheet_name=sheets[name], index=False, na_rep="")
        pd.DataFrame(prov, columns=["table", "sheet", "section", "key", "value"]).to_excel(
            writer, sheet_name=PROVENANCE_SHEET, index=False)


def write_parquet(frame, provenance: dict[str, Any], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .store import PROVENANCE_KEY

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           PROVENANCE_KEY: strict_json(provenance, default=str).encode()})
    pq.write_table(table, str(path))


def pyradiomics_layout(store, name: str, frame):
    """A table keyed by ROI in pyradiomics' batch-output layout.

    pyradiomics' batch mode reads a CSV with ``Image``, ``Mask`` (and optional ``Label``) columns and
    writes each input row back with ``diagnostics_*`` and feature columns appended.  Here the case
    columns are ``Image``, ``Mask``, ``Label`` (absolute paths from the manifest) and our ROI ids.
    """
    import pandas as pd

    missing = [c for c in ROI_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"table {name!r} is not one row per image/mask pair (no {missing} columns); the "
                         "pyradiomics layout applies to ROI tables such as 'radiomics'")
    cohort = store.cohort
    images, masks = [], []
    for row in frame[list(ROI_COLUMNS)].itertuples(index=False):
        image = mask = ""
        patient = cohort.patients.get(str(row.patient_id))
        tp = patient.timepoints.get(str(row.timepoint)) if patient else None
        if tp is not None:
            if tp.has_image(str(row.image)):
                image = str(store.path(tp.image(str(row.image)).path))
            seg = next((s for s in tp.segmentations_by(reader=str(row.reader), method=str(row.method))
                        if int(s.label) == int(row.label)), None)
            mask = str(store.path(seg.path)) if seg else ""
        images.append(image)
        masks.append(mask)
    diagnostics = [c for c in frame.columns if str(c).startswith("diagnostics_")]
    features = [c for c in frame.columns if c not in ROI_COLUMNS and c not in diagnostics]
    cases = pd.DataFrame({"Image": images, "Mask": masks, "Label": frame["label"].astype("int64").to_numpy()})
    ids = frame[[c for c in ROI_COLUMNS if c != "label"]].reset_index(drop=True)
    return pd.concat([cases, ids, frame[diagnostics + features].reset_index(drop=True)], axis=1)


# ---- export -----------------------------------------------------------------------------------

def export_tables(store, names: list[str] | None, fmt: str, out_dir: str | Path, *,
                  overwrite: bool = False) -> list[Path]:
    """Write the named tables (``None``: all) to ``out_dir``; returns the files written.

    CSV/Parquet/pyradiomics: one file per table (``<name>.csv``, ``<name>.parquet``,
    ``<name>_pyradiomics.csv``); XLSX: one ``tables.xlsx`` (or ``<name>.xlsx`` for one table).
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out}: folder is not empty; choose an empty folder or pass --overwrite")
    if names is None:
        names = table_names(store)
        if fmt == "pyradiomics":
            names = [n for n in names if set(ROI_COLUMNS) <= set(_columns(store, n))]
        if not names:
            raise InputError(f"{store.tables_dir}: no table to export" +
                             (" in the pyradiomics layout (no ROI table such as 'radiomics')"
                              if fmt == "pyradiomics" else ""))
    names = [check_table(store, n) for n in dict.fromkeys(names)]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        made = _write_all(store, names, fmt, staging)
        return _publish(staging, made, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_table_file(store, name: str, path: str | Path, *, overwrite: bool = False) -> Path:
    """One table into one ``.csv`` or ``.xlsx`` file (e.g. the file a Save dialog chose), written atomically."""
    from ..atomic import atomic_write_with

    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".csv", ".xlsx"):
        raise InputError(f"{path}: export a table as .csv or .xlsx")
    frame = store.read_table(check_table(store, name))
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists; choose another file or overwrite it")
    if kind == ".csv":
        atomic_write_with(path, lambda tmp: write_csv(frame, tmp))
    else:
        atomic_write_with(path, lambda tmp: write_xlsx({name: frame}, {name: store.table_provenance(name)}, tmp))
    return path


def _columns(store, name: str) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(store.table_path(name)).names)


def _write_all(store, names: list[str], fmt: str, folder: Path) -> list[Path]:
    frames = {n: store.read_table(n) for n in names}
    provenance = {n: store.table_provenance(n) for n in names}
    if fmt == "xlsx":
        path = folder / (f"{names[0]}.xlsx" if len(names) == 1 else "tables.xlsx")
        write_xlsx(frames, provenance, path)
        return [path]
    made = []
    for name, frame in frames.items():
        if fmt == "csv":
            path = folder / f"{name}.csv"
            write_csv(frame, path)
        elif fmt == "parquet":
            path = folder / f"{name}.parquet"
            write_parquet(frame, provenance[name], path)
        else:
            path = folder / f"{name}_pyradiomics.csv"
            write_csv(pyradiomics_layout(store, name, frame), path)
        made.append(path)
    return made


def _publish(staging: Path, made: list[Path], out: Path) -> list[Path]:
    """Move the finished files in: the whole folder when ``out`` is new or empty, else file by file."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes 0700; the published folder gets normal permissions
        os.replace(staging, out)
        return [out / p.name for p in made]
    for p in made:
        os.replace(p, out / p.name)
    return [out / p.name for p in made]


def export_beside_report(store, names: list[str], report_dir: str | Path) -> str:
    """CSV copies of the tables a report used, next to its HTML (a reviewer can re-run a number).

    Returns the HTML section that links them (empty when none of the tables exists).
    """
    import html

    from ..atomic import atomic_write_with

    folder = Path(report_dir)
    items = []
    for name in dict.fromkeys(names):
        if not store.has_table(name):
            continue
        frame = store.read_table(name)
        path = folder / f"{name}.csv"
        atomic_write_with(path, lambda tmp, frame=frame: write_csv(frame, tmp))
        items.append(f"<li><a href='{html.escape(path.name)}'>{html.escape(path.name)}</a> "
                     f"({frame.shape[0]} rows x {frame.shape[1]} columns)</li>")
    if not items:
        return ""
    return ("<h2>Tables used</h2><p>CSV copies of the study tables behind this report (UTF-8, '.' decimal mark, "
            "empty cells for missing values):</p><ul>" + "".join(items) + "</ul>")
