"""Study manifest (manifest.csv) and clinical table (clinical.csv): read, validate, write.

The manifest maps files to patient / timepoint / role; its row schema is
``resources/manifest.schema.json`` (JSON Schema).  Errors name the file, the row and the column.
Both files may be UTF-8 (with or without the byte-order mark Excel writes) or Latin-1.  Clinical
values are range-checked (:data:`CLINICAL_RANGES`); extra clinical columns are kept as text.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from .model import (
    CLINICAL_VARIABLES,
    OUTCOMES,
    ROLES,
    Cohort,
    Image,
    Patient,
    Segmentation,
    Timepoint,
)

MANIFEST_NAME = "manifest.csv"
CLINICAL_NAME = "clinical.csv"

MANIFEST_COLUMNS = [
    "patient_id", "timepoint", "kind", "path", "modality", "role", "b_value", "laterality",
    "pixel_spacing_mm", "series_uid", "description", "reader", "method", "label", "reference",
    "created", "date", "cycle",
]
_NUMBER = {"b_value", "pixel_spacing_mm"}
_INTEGER = {"label", "cycle"}
CLINICAL_COLUMNS = ["patient_id", *CLINICAL_VARIABLES, *OUTCOMES]
#: Plausible values of the numeric clinical columns (inclusive); anything else is a typo or a unit error.
CLINICAL_RANGES = {"age": (0.0, 120.0), "ki67": (0.0, 100.0), "rcb_index": (0.0, math.inf)}


def read_table_text(path: Path) -> str:
    """A CSV's text: UTF-8 (an Excel byte-order mark is dropped), else Latin-1 (never fails)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


@cache
def manifest_schema() -> dict[str, Any]:
    text = resources.files("NACResponseLib").joinpath("resources/manifest.schema.json").read_text()
    return json.loads(text)


def _coerce(row: dict[str, str], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in row.items():
        if key is None:
            raise ManifestError(f"{where}: more values than header columns")
        value = (raw or "").strip()
        if value == "":
            out[key] = None
        elif key in _NUMBER:
            try:
                out[key] = float(value)
            except ValueError:
                raise ManifestError(f"{where}: column {key!r} must be a number, got {value!r}") from None
        elif key in _INTEGER:
            try:
                out[key] = int(float(value))
            except ValueError:
                raise ManifestError(f"{where}: column {key!r} must be an integer, got {value!r}") from None
        else:
            out[key] = value
    return out


def validate_manifest_rows(rows: Iterable[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Validate coerced rows against the JSON schema; raise one error listing every problem."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(manifest_schema())
    problems = []
    rows = list(rows)
    for i, row in enumerate(rows, start=2):  # row 1 is the header
        for err in validator.iter_errors(row):
            column = ".".join(str(p) for p in err.absolute_path) or "(row)"
            problems.append(f"{source}:{i}: column {column}: {err.message}")
        if row.get("kind") == "image" and row.get("role") in ROLES:
            expected = ROLES[row["role"]][0]
            if row.get("modality") and row["modality"] != expected:
                problems.append(f"{source}:{i}: role {row['role']!r} is {expected}, not {row['modality']}")
    if problems:
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ManifestError("invalid manifest:\n" + "\n".join(problems[:20]) + more)
    return rows


def read_manifest_rows(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    with io.StringIO(read_table_text(path), newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise ManifestError(f"{path}: manifest is empty")
        unknown = set(reader.fieldnames) - set(MANIFEST_COLUMNS)
        if unknown:
            raise ManifestError(f"{path}: unknown manifest columns {sorted(unknown)}; allowed: {MANIFEST_COLUMNS}")
        rows = [_coerce(r, f"{path}:{i}") for i, r in enumerate(reader, start=2)]
    if not rows:
        raise ManifestError(f"{path}: manifest has a header but no rows")
    return validate_manifest_rows(rows, str(path))


def read_clinical(path: str | Path) -> dict[str, dict[str, Any]]:
    """patient_id -> {variable: value}; binary columns accept 0/1, yes/no, pos/neg, true/false."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: clinical table not found")
    out: dict[str, dict[str, Any]] = {}
    with io.StringIO(read_table_text(path), newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "patient_id" not in reader.fieldnames:
            raise ManifestError(f"{path}: clinical table needs a 'patient_id' column")
        for i, row in enumerate(reader, start=2):
            pid = (row.get("patient_id") or "").strip()
            if not pid:
                raise ManifestError(f"{path}:{i}: empty patient_id")
            if pid in out:
                raise ManifestError(f"{path}:{i}: patient {pid} appears twice")
            out[pid] = {k: _clinical_value(k, v, f"{path}:{i}") for k, v in row.items() if k != "patient_id"}
    return out


_TRUE = {"1", "yes", "y", "true", "pos", "positive", "+"}
_FALSE = {"0", "no", "n", "false", "neg", "negative", "-"}


def _clinical_value(column: str, raw: str | None, where: str) -> Any:
    value = (raw or "").strip()
    if value == "" or value.lower() in {"na", "nan", "none"}:
        return None
    kind = {**CLINICAL_VARIABLES, **OUTCOMES}.get(column, "string")
    if kind == "binary":
        if value.lower() in _TRUE:
            return 1
        if value.lower() in _FALSE:
            return 0
        raise ManifestError(f"{where}: column {column!r} must be 0/1 (or yes/no), got {value!r}")
    if kind in ("number", "integer"):
        try:
            number = float(value)
        except ValueError:
            raise ManifestError(f"{where}: column {column!r} must be a number, got {value!r}") from None
        if math.isnan(number):
            return None
        if math.isinf(number):
            raise ManifestError(f"{where}: column {column!r} must be a finite number, got {value!r}")
        low, high = CLINICAL_RANGES.get(column, (-math.inf, math.inf))
        if not low <= number <= high:
            raise ManifestError(f"{where}: column {column!r} must lie in [{low:g}, {high:g}], got {value!r}")
        if column == "miller_payne" and number not in (1, 2, 3, 4, 5):
            raise ManifestError(f"{where}: Miller-Payne grade must be 1..5, got {value!r}")
        return int(number) if kind == "integer" else number
    if column == "rcb_class" and value not in ("0", "I", "II", "III"):
        raise ManifestError(f"{where}: rcb_class must be 0, I, II or III, got {value!r}")
    return value


def cohort_from_rows(rows: list[dict[str, Any]], clinical: dict[str, dict[str, Any]] | None = None) -> Cohort:
    cohort = Cohort()
    for row in rows:
        pid = row["patient_id"]
        patient = cohort.patients.setdefault(pid, Patient(pid))
        tp = patient.timepoints.setdefault(row["timepoint"], Timepoint(row["timepoint"]))
        tp.date = tp.date or row.get("date")
        tp.cycle = tp.cycle if tp.cycle is not None else row.get("cycle")
        if row["kind"] == "image":
            tp.images.append(Image(
                path=row["path"], modality=row["modality"], role=row["role"], b_value=row.get("b_value"),
                laterality=row.get("laterality"), pixel_spacing_mm=row.get("pixel_spacing_mm"),
                series_uid=row.get("series_uid"), description=row.get("description"),
            ))
        else:
            tp.segmentations.append(Segmentation(
                path=row["path"], reader=row["reader"], method=row.get("method") or "manual",
                label=row.get("label") or 1, reference=row.get("reference") or "dce_early",
                created=row.get("created"),
            ))
    for pid, values in (clinical or {}).items():
        patient = cohort.patients.setdefault(pid, Patient(pid))
        patient.clinical = {k: v for k, v in values.items() if k not in OUTCOMES}
        patient.outcomes = {k: v for k, v in values.items() if k in OUTCOMES}
    return cohort


def write_manifest(rows: list[dict[str, Any]], path: str | Path) -> None:
    from ..atomic import atomic_write_text

    validate_manifest_rows(rows, str(path))
    atomic_write_text(path, _csv_text(rows, MANIFEST_COLUMNS))


def write_clinical(clinical: dict[str, dict[str, Any]], path: str | Path) -> None:
    from ..atomic import atomic_write_text

    rows = [{"patient_id": pid, **values} for pid, values in clinical.items()]
    extra = list(dict.fromkeys(k for values in clinical.values() for k in values if k not in CLINICAL_COLUMNS))
    atomic_write_text(path, _csv_text(rows, CLINICAL_COLUMNS + extra))  # extra columns are kept, not dropped


def _csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    return buf.getvalue()


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
