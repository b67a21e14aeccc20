"""Data frames -> typed columns for ``vtkMRMLTableNode`` (Slicer-free, so CI tests the conversion).

``mrml_tables.py`` turns these columns into VTK arrays.  The rules: numbers become double columns
(NaN stays NaN), booleans become integer 0/1, integers stay integers
(64-bit when a value does not fit in 32 bits), everything else is text with
missing values as empty strings.  Wide feature tables (thousands of columns for one case) are
shown transposed, one row per feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class TableColumn:
    name: str
    kind: str  # "double", "int" (32-bit), "int64" (a value beyond 32 bits) or "string"
    values: tuple


def _is_missing(value) -> bool:
    """None, NaN, NaT and pandas NA (whose truth value cannot be taken)."""
    if value is None:
        return True
    import pandas as pd

    try:
        result = pd.isna(value)
    except (TypeError, ValueError):
        return False
    return result is True or (not hasattr(result, "__len__") and bool(result))


def table_columns(frame, max_rows: int | None = None) -> list[TableColumn]:
    """Columns of a pandas DataFrame, typed for a VTK table."""
    import pandas as pd
    from pandas.api import types

    if max_rows is not None:
        frame = frame.head(max_rows)
    columns = []
    for name in frame.columns:
        series = frame[name]
        if types.is_bool_dtype(series):
            values = tuple(int(v) if not _is_missing(v) else 0 for v in series)
            columns.append(TableColumn(str(name), "int", values))
        elif types.is_integer_dtype(series) and not series.isna().any():
            values = tuple(int(v) for v in series)
            wide = any(not INT32_MIN <= v <= INT32_MAX for v in values)
            columns.append(TableColumn(str(name), "int64" if wide else "int", values))
        elif types.is_numeric_dtype(series):
            values = tuple(math.nan if _is_missing(v) else float(v) for v in pd.to_numeric(series, errors="coerce"))
            columns.append(TableColumn(str(name), "double", values))
        else:
            columns.append(TableColumn(str(name), "string", tuple("" if _is_missing(v) else str(v) for v in series)))
    return columns


def split_feature_column(column: str) -> tuple[str, str, str]:
    """(timepoint block, image, feature) of a wide column by the core's grammar (``columns.parse``):
    ``pre__dce_early__original_firstorder_Mean`` -> (``pre``, ``dce_early``, ``original_firstorder_Mean``);
    ``delta_rel__pre_post__dce_early__f`` -> (``delta_rel pre_post``, ``dce_early``, ``f``)."""
    from NACResponseLib.columns import SEP, parse

    col = parse(column)
    if col is None:
        return "", "", column
    return col.block.replace(SEP, " "), col.image or "", col.feature


def case_feature_rows(wide, patient_id: str, reader: str | None = None, id_columns=("patient_id", "reader")):
    """One case of a wide feature table as a long frame: ``timepoint, image, feature, value``."""
    import pandas as pd

    rows = wide[wide["patient_id"].astype(str) == str(patient_id)]
    if reader is not None and "reader" in rows.columns:
        rows = rows[rows["reader"].astype(str) == str(reader)]
    if rows.empty:
        who = f"patient {patient_id}" + (f", reader {reader}" if reader else "")
        raise KeyError(f"{who} is not in the feature table")
    row = rows.iloc[0]
    out = []
    for column in wide.columns:
        if column in id_columns:
            continue
        timepoint, image, feature = split_feature_column(str(column))
        value = row[column]
        out.append({"timepoint": timepoint, "image": image, "feature": feature,
                    "value": float(value) if not _is_missing(value) and _is_number(value) else math.nan})
    return pd.DataFrame(out, columns=["timepoint", "image", "feature", "value"])


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
