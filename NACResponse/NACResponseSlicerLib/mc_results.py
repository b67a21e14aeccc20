"""Microcalcification results for the MC panel (Slicer-free): the kept MCs and largest cluster of one
mammogram from the study tables, user edits as the core's edit format, and the RESMIN summary.

Positions are mm from the image corner (``x_mm = (col + 0.5) * spacing``), like every MC table.
Edits follow ``NACResponseLib.mc.editing``: ``{"add": [[x, y]...], "remove": [[x, y]...]}`` relative to
the detector's output, so they are computed against ``mc_detections`` (never against an earlier edit).
"""

from __future__ import annotations

import numpy as np

#: The core's removal radius (``NACResponseLib.mc.editing.apply_edits``): points this close are one MC.
MATCH_RADIUS_MM = 0.5


def image_rows(frame, patient_id: str, timepoint: str, image: str):
    if frame is None or len(frame) == 0 or "patient_id" not in frame:
        return frame.iloc[0:0] if frame is not None else None
    return frame[(frame["patient_id"] == patient_id) & (frame["timepoint"] == timepoint) & (frame["image"] == image)]


def kept_points_mm(frame, patient_id: str, timepoint: str, image: str) -> np.ndarray:
    """(N, 2) x_mm, y_mm of the kept MCs of one mammogram (``mc_mcs`` after edits or ``mc_detections``)."""
    rows = image_rows(frame, patient_id, timepoint, image)
    if rows is None or len(rows) == 0:
        return np.zeros((0, 2))
    if "kept" in rows:
        rows = rows[rows["kept"].astype(bool)]
    return rows[["x_mm", "y_mm"]].to_numpy(float).reshape(-1, 2)


def largest_cluster(clusters, patient_id: str, timepoint: str, image: str):
    """The row of the cluster with the largest extent (end points end1/end2, extent_mm), or None."""
    rows = image_rows(clusters, patient_id, timepoint, image)
    if rows is None or len(rows) == 0:
        return None
    return rows.sort_values("extent_mm", kind="mergesort").iloc[-1]


def edits_from_points(detected_mm, edited_mm, radius_mm: float = MATCH_RADIUS_MM) -> dict:
    """Edits turning the detector's kept MCs into the user's point list.

    A detection with no user point within ``radius_mm`` was deleted (``remove``); a user point with no
    detection within ``radius_mm`` was added (``add``).
    """
    detected = np.asarray(detected_mm, float).reshape(-1, 2)
    edited = np.asarray(edited_mm, float).reshape(-1, 2)
    if len(detected) and len(edited):
        d = np.hypot(detected[:, None, 0] - edited[None, :, 0], detected[:, None, 1] - edited[None, :, 1])
        removed = detected[d.min(axis=1) > radius_mm]
        added = edited[d.min(axis=0) > radius_mm]
    else:
        removed, added = detected, edited
    return {"add": added.tolist(), "remove": removed.tolist()}


def laterality_of(images, patient_id: str, image: str) -> str:
    rows = images[(images["patient_id"] == patient_id) & (images["image"] == image)] if images is not None else []
    return str(rows["laterality"].iloc[0]) if len(rows) else ""


def resmin_text(resmin, patient_id: str, laterality: str) -> str:
    """MC change category, extents in cm, the tumour RECIST category and the RESMIN flag, in words."""
    if resmin is None or len(resmin) == 0:
        return "No comparison yet (run Compare)."
    rows = resmin[resmin["patient_id"] == patient_id]
    if laterality and "laterality" in rows:
        rows = rows[rows["laterality"] == laterality]
    if len(rows) == 0:
        return f"{patient_id}: no pre/post mammograms to compare."
    parts = []
    for _, row in rows.iterrows():
        change = row.get("change_pct")
        change_text = f", {change:+.0f}%" if isinstance(change, (int, float)) and np.isfinite(change) else ""
        flag = "YES" if bool(row.get("resmin_flag")) else "no"
        parts.append(f"{row.get('laterality', '')}: MC {row.get('mc_category')} "
                     f"({row.get('pre_extent_mm', 0.0) / 10:.2f} -> {row.get('post_extent_mm', 0.0) / 10:.2f} cm"
                     f"{change_text}); tumour RECIST {row.get('tumour_recist') or 'unknown'}; RESMIN flag: {flag}. "
                     f"{row.get('statement', '')}".strip())
    return "\n".join(parts)
