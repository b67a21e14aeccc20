"""Assemble model inputs from a study: the clinical table, the wide radiomics and deep-feature
tables (one row per patient) and the ICC whitelist; and filter columns by timepoint for stepwise
models."""

from __future__ import annotations

from typing import Any

from ..columns import column_timepoints
from ..errors import InputError
from ..study.model import CLINICAL_VARIABLES, OUTCOMES, timepoint_order

MODEL_KINDS = ("clinical", "radiomics", "deep", "combined")
DEFAULT_CLINICAL = ("age", "er", "pr", "her2", "ki67", "subtype", "ct", "cn")


def clinical_frame(store):
    """Clinical variables and outcomes, one row per patient (index ``patient_id``)."""
    import pandas as pd

    rows = []
    for pid, patient in store.cohort.patients.items():
        rows.append({"patient_id": pid, **{k: patient.clinical.get(k) for k in CLINICAL_VARIABLES},
                     **{k: patient.outcomes.get(k) for k in OUTCOMES}})
    if not rows:
        raise InputError(f"{store.root}: the study has no patients")
    return pd.DataFrame(rows).set_index("patient_id")


def wide_feature_frame(store, table: str, reader: str | None = None):
    """One row per patient from a wide feature table; with several readers, ``reader`` picks one
    (default: the reader present for the most patients, ties broken alphabetically)."""
    df = store.read_table(table)
    if "patient_id" not in df.columns:
        raise InputError(f"{store.table_path(table)}: no patient_id column")
    if "reader" in df.columns:
        if reader is None:
            counts = df.groupby("reader")["patient_id"].nunique()
            reader = sorted(counts.index, key=lambda r: (-counts[r], str(r)))[0]
        elif reader not in set(df["reader"]):
            raise InputError(f"{store.table_path(table)}: reader {reader!r} not found "
                             f"(have {sorted(set(df['reader']))})")
        df = df[df["reader"] == reader].drop(columns=["reader"])
    df = df.drop_duplicates("patient_id").set_index("patient_id")
    id_cols = [c for c in ("timepoint", "image", "method", "label") if c in df.columns]
    return df.drop(columns=id_cols).apply(lambda s: s.astype(float) if s.dtype != object else s)


def columns_available_by(columns, timepoint: str) -> list[str]:
    """Columns computable once ``timepoint`` is acquired (all their timepoints are not later; the
    column grammar of :mod:`NACResponseLib.columns` says which timepoints a column needs)."""
    limit = timepoint_order(timepoint)
    return [c for c in columns if all(timepoint_order(t) <= limit for t in column_timepoints(c))]


def icc_whitelist(store) -> dict[str, bool] | None:
    if not store.has_table("icc_whitelist"):
        return None
    t = store.read_table("icc_whitelist")
    return {str(f): bool(k) for f, k in zip(t["feature"], t["kept"])}


def model_inputs(store, kind: str, *, clinical_columns=DEFAULT_CLINICAL, reader: str | None = None,
                 deep_table: str = "deep_bottleneck", timepoint: str | None = None) -> Any:
    """Feature DataFrame (index patient_id) for a model kind, optionally limited to the columns
    available at ``timepoint``."""
    if kind not in MODEL_KINDS:
        raise InputError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    clin = clinical_frame(store)
    parts = []
    if kind in ("clinical", "combined"):
        cols = [c for c in clinical_columns if c in clin.columns and clin[c].notna().any()]
        if not cols:
            raise InputError(f"{store.clinical_path}: none of the clinical variables {list(clinical_columns)} has values")
        parts.append(clin[cols])
    if kind in ("radiomics", "combined"):
        parts.append(wide_feature_frame(store, "radiomics_wide", reader))
    if kind in ("deep", "combined"):
        parts.append(wide_feature_frame(store, deep_table, reader))
    X = parts[0]
    for p in parts[1:]:
        X = X.join(p.drop(columns=[c for c in p.columns if c in X.columns]), how="inner")
    if timepoint is not None:
        X = X[columns_available_by(X.columns, timepoint)]
    return X
