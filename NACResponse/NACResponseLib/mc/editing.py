"""User corrections of MC detections (add / remove points) and recomputation downstream.

Why: a reader must be able to overrule the detector; clusters, extents and the RESMIN category are
then recomputed from the corrected list, and the corrections are kept apart from the detector's
output so they can be audited and re-applied after a re-detection.

Edit format (JSON, mm from the image corner like every MC position)::

    {"add": [[x_mm, y_mm], ...], "remove": [[x_mm, y_mm], ...]}

``remove`` marks the nearest kept detection within ``remove_radius_mm`` (default 0.5 mm) as
``kept = False, reason = "user_removed"``; a removal that matches nothing is reported back.
``add`` appends a kept detection with ``source = "user"`` (measurements unknown: NaN); an
added point may also restore a rejected detection: it is then re-kept (``reason`` cleared) instead
of duplicated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .clusters import ClusterParams, cluster_detections


def load_edits(path: str | Path) -> dict:
    """Read and validate an edit file; raise :class:`InputError` naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: edit file not found")
    try:
        edits = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    return validate_edits(edits, str(path))


def validate_edits(edits: dict, name: str = "edits") -> dict:
    if not isinstance(edits, dict) or not set(edits) <= {"add", "remove"}:
        raise InputError(f"{name}: expected an object with keys 'add' and/or 'remove'")
    out = {}
    for key in ("add", "remove"):
        pts = edits.get(key, [])
        try:
            arr = np.asarray(pts, dtype=float) if len(pts) else np.zeros((0, 2))
        except (TypeError, ValueError):
            raise InputError(f"{name}: '{key}' must be a list of [x_mm, y_mm] number pairs") from None
        if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: '{key}' must be a list of [x_mm, y_mm] pairs")
        out[key] = arr.tolist()
    return out


def apply_edits(detections: pd.DataFrame, edits: dict, *, remove_radius_mm: float = 0.5) -> tuple[pd.DataFrame, list]:
    """Return (edited detections, removal points that matched nothing)."""
    edits = validate_edits(edits)
    det = detections.copy().reset_index(drop=True)
    if "source" not in det:
        det["source"] = "detector"
    unmatched = []
    for x, y in edits["remove"]:
        kept = det["kept"].to_numpy(bool)
        d = np.hypot(det["x_mm"].to_numpy(float) - x, det["y_mm"].to_numpy(float) - y)
        d[~kept] = np.inf
        if len(d) and d.min() <= remove_radius_mm:
            i = int(np.argmin(d))
            det.loc[i, "kept"] = False
            det.loc[i, "reason"] = "user_removed"
        else:
            unmatched.append([x, y])
    new_rows = []
    for x, y in edits["add"]:
        d = np.hypot(det["x_mm"].to_numpy(float) - x, det["y_mm"].to_numpy(float) - y)
        rejected = ~det["kept"].to_numpy(bool)
        if len(d) and np.any(rejected & (d <= remove_radius_mm)):
            i = int(np.argmin(np.where(rejected, d, np.inf)))
            det.loc[i, "kept"] = True
            det.loc[i, "reason"] = ""
            det.loc[i, "source"] = "user_restored"
        else:
            new_rows.append({"x_mm": float(x), "y_mm": float(y), "kept": True, "reason": "", "source": "user"})
    if new_rows:
        det = pd.concat([det, pd.DataFrame(new_rows)], ignore_index=True)
    return det, unmatched


def recompute(detections: pd.DataFrame, edits: dict | None = None, *, params: ClusterParams | None = None,
              breast_area_mm2: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """Apply ``edits`` (if any) and recompute clusters: (MC table with cluster ids, cluster table,
    unmatched removals)."""
    unmatched: list = []
    if edits:
        detections, unmatched = apply_edits(detections, edits)
    mcs, clusters = cluster_detections(detections, params, breast_area_mm2)
    return mcs, clusters, unmatched
