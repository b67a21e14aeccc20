"""Radiomics tables: long (one row per ROI) -> wide (one row per patient and reader) + deltas.

Column names are stable so later stages (ICC whitelist, models) can address features:

* long table ``radiomics``: ``patient_id, timepoint, image, reader, method, label`` + one column
  per pyradiomics feature name (``original_firstorder_Mean``, ``wavelet-LLH_glcm_Contrast``).
* wide table ``radiomics_wide``: ``patient_id, reader`` + value and delta columns named by
  :mod:`NACResponseLib.columns` (``<timepoint>__<image>__<feature>``,
  ``delta_abs__<tpA>_<tpB>__<image>__<feature>`` = B - A and ``delta_rel__...`` = (B - A) / |A|)
  for every pair of timepoints with A before B.  When A == 0 the relative delta is 0 if B == 0
  too, otherwise NaN (undefined, never an infinity); NaN propagates.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from ..columns import DELTA_ABS, DELTA_REL, delta_column, value_column, wide_reader_ids
from ..study.model import timepoint_order

ID_COLUMNS = ("patient_id", "timepoint", "image", "reader", "method", "label")
WIDE_ID_COLUMNS = ("patient_id", "reader")


def long_feature_columns(frame) -> list[str]:
    """Feature columns of the long table (everything but its id columns and pyradiomics diagnostics)."""
    return [c for c in frame.columns if c not in ID_COLUMNS and not str(c).startswith("diagnostics_")]


def long_table(rows: list[dict[str, Any]], features: list[dict[str, float]]):
    """Long table from ROI id rows and their feature dicts (same order); feature order = first seen."""
    import pandas as pd

    names: dict[str, None] = {}
    for f in features:
        names.update(dict.fromkeys(f))
    ids = pd.DataFrame(rows, columns=list(ID_COLUMNS))
    ids["label"] = ids["label"].astype("int64")
    values = np.full((len(features), len(names)), np.nan)
    index = {n: i for i, n in enumerate(names)}
    for r, f in enumerate(features):
        for n, v in f.items():
            values[r, index[n]] = v
    data = pd.DataFrame(values, columns=list(names))
    return pd.concat([ids.reset_index(drop=True), data], axis=1)


def wide_table(long, timepoints: list[str] | None = None, deltas: bool = True):
    """One row per (patient_id, reader); see the module docstring for column names.

    Only ROIs of each segmentation's own label are used (the long table holds one label per
    segmentation).  ``timepoints`` fixes the column/delta order (default: chronological).
    """
    import pandas as pd

    feats = long_feature_columns(long)
    if long.empty:
        return pd.DataFrame(columns=list(WIDE_ID_COLUMNS))
    reader_ids = wide_reader_ids(long[["reader", "method"]].drop_duplicates().itertuples(index=False))
    reader_id = [reader_ids[(str(r), str(m))] for r, m in zip(long["reader"], long["method"])]
    frame = long.assign(_reader=reader_id)
    tps = timepoints or sorted(frame["timepoint"].unique(), key=timepoint_order)
    images = sorted(frame["image"].unique())
    rows = sorted(set(zip(frame["patient_id"], frame["_reader"])))
    row_index = {r: i for i, r in enumerate(rows)}
    blocks: dict[tuple[str, str], np.ndarray] = {}
    for (tp, image), group in frame.groupby(["timepoint", "image"], sort=False):
        block = np.full((len(rows), len(feats)), np.nan)
        idx = [row_index[(p, r)] for p, r in zip(group["patient_id"], group["_reader"])]
        block[idx, :] = group[feats].to_numpy(dtype=float)
        blocks[(tp, image)] = block
    present_images = [im for im in images if any((tp, im) in blocks for tp in tps)]
    # Column blocks are gathered and put in one float array: one DataFrame block instead of
    # ~10,000 single columns (a 1,130-feature protocol gives > 13,000 wide columns).
    names: list[str] = []
    parts: list[np.ndarray] = []
    for tp in tps:
        for image in present_images:
            block = blocks.get((tp, image))
            if block is None:
                continue
            keep = np.flatnonzero(~np.all(np.isnan(block), axis=0))
            names += [value_column(tp, feats[j], image) for j in keep]
            parts.append(block[:, keep])
    if deltas:
        for a, b in combinations(tps, 2):
            for image in present_images:
                if (a, image) not in blocks or (b, image) not in blocks:
                    continue
                va, vb = blocks[(a, image)], blocks[(b, image)]
                keep = np.flatnonzero(~(np.all(np.isnan(va), axis=0) | np.all(np.isnan(vb), axis=0)))
                # per feature: the absolute then the relative delta
                for j in keep:
                    names += [delta_column(DELTA_ABS, a, b, feats[j], image),
                              delta_column(DELTA_REL, a, b, feats[j], image)]
                pair = np.stack([delta_abs(va, vb)[:, keep], delta_rel(va, vb)[:, keep]], axis=2)
                parts.append(pair.reshape(len(rows), 2 * len(keep)))
    ids = pd.DataFrame({"patient_id": np.array([r[0] for r in rows], dtype=object),
                        "reader": np.array([r[1] for r in rows], dtype=object)})
    if not names:
        return ids
    values = pd.DataFrame(np.hstack(parts), columns=names)
    return pd.concat([ids, values], axis=1)


def delta_abs(pre: np.ndarray, post: np.ndarray) -> np.ndarray:
    """post - pre."""
    return np.asarray(post, float) - np.asarray(pre, float)


def delta_rel(pre: np.ndarray, post: np.ndarray) -> np.ndarray:
    """(post - pre) / |pre|; 0 when both are 0, NaN when only pre is 0 (never infinite)."""
    pre, post = np.asarray(pre, float), np.asarray(post, float)
    diff = post - pre
    with np.errstate(divide="ignore", invalid="ignore"):
        out = diff / np.abs(pre)
    zero = pre == 0
    out[zero] = np.where(post[zero] == 0, 0.0, np.nan)
    return out
