"""Deep-feature tables: one row per (patient_id, reader), per-timepoint blocks and deltas.

Column names follow :mod:`NACResponseLib.columns` (no image part: a deep feature sees several
channels at once):

* ``deep_resnet50``: ``patient_id, reader`` + ``<tp>__resnet50_0000`` .. ``<tp>__resnet50_2047``
  + ``delta_abs__<tpA>_<tpB>__resnet50_NNNN`` = B - A for every pair of timepoints with A before B
  (e.g. ``delta_abs__pre_post__resnet50_0000`` = post - pre).
* ``deep_bottleneck``: ``patient_id, reader`` + ``<tp>__bottleneck_mean_NNN`` and
  ``<tp>__bottleneck_max_NNN`` (one per channel of the segmentation network's bottleneck) + deltas
  named the same way.

A timepoint a patient lacks (or that failed) is NaN, and so are the deltas involving it.
Reader ids are those of :func:`NACResponseLib.columns.wide_reader_ids`.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from ..columns import DELTA_ABS, delta_column, value_column
from ..study.model import timepoint_order

ID_COLUMNS = ("patient_id", "reader")
RESNET_TABLE = "deep_resnet50"
RESNET_SLICES_TABLE = "deep_resnet50_slices"
BOTTLENECK_TABLE = "deep_bottleneck"


def resnet_feature_names(n: int = 2048) -> list[str]:
    return [f"resnet50_{i:04d}" for i in range(n)]


def bottleneck_feature_names(channels: int) -> list[str]:
    return [f"bottleneck_mean_{c:03d}" for c in range(channels)] + \
        [f"bottleneck_max_{c:03d}" for c in range(channels)]


def wide_from_vectors(vectors: dict[tuple[str, str, str], np.ndarray], names: list[str],
               timepoints: list[str] | None = None):
    """``vectors[(patient_id, reader, timepoint)]`` -> the wide DataFrame described above."""
    import pandas as pd

    rows = sorted({(p, r) for p, r, _ in vectors})
    tps = sorted(timepoints or {t for _, _, t in vectors}, key=timepoint_order)
    n = len(names)
    blocks: dict[str, np.ndarray] = {}
    for tp in tps:
        block = np.full((len(rows), n), np.nan, dtype=np.float64)
        for i, (p, r) in enumerate(rows):
            v = vectors.get((p, r, tp))
            if v is not None:
                block[i] = np.asarray(v, dtype=np.float64)
        blocks[tp] = block
    parts = [pd.DataFrame(rows, columns=list(ID_COLUMNS))]
    for tp in tps:
        parts.append(pd.DataFrame(blocks[tp], columns=[value_column(tp, f) for f in names]))
    for a, b in combinations(tps, 2):
        parts.append(pd.DataFrame(blocks[b] - blocks[a], columns=[delta_column(DELTA_ABS, a, b, f) for f in names]))
    return pd.concat(parts, axis=1)

