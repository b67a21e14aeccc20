"""Validation against known truth: FROC-style detection sensitivity and cluster-extent error.

Matching rule (per image): detections are taken in decreasing score order; a detection is a true
positive when it lies within ``max(tol_mm, truth diameter)`` of a not-yet-matched true MC (the
nearest one), a duplicate (within that distance of an already-matched MC) counts as neither, and
anything else is a false positive.  Sweeping the score threshold gives the FROC curve:
sensitivity (matched MCs / all MCs) against mean false positives per image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd


def match_image(det_xy: np.ndarray, det_score: np.ndarray, truth_xy: np.ndarray,
                truth_diam: np.ndarray | None = None, tol_mm: float = 0.5) -> np.ndarray:
    """Label each detection 1 (true positive), 0 (false positive) or -1 (duplicate); returned in the
    order of the inputs."""
    det_xy = np.asarray(det_xy, dtype=float).reshape(-1, 2)
    truth_xy = np.asarray(truth_xy, dtype=float).reshape(-1, 2)
    out = np.zeros(len(det_xy), dtype=int)
    if len(det_xy) == 0 or len(truth_xy) == 0:
        return out
    radius = np.full(len(truth_xy), tol_mm) if truth_diam is None else np.maximum(tol_mm, np.asarray(truth_diam))
    dist = np.hypot(det_xy[:, None, 0] - truth_xy[None, :, 0], det_xy[:, None, 1] - truth_xy[None, :, 1])
    near = dist <= radius[None, :]
    matched = np.zeros(len(truth_xy), dtype=bool)
    for i in np.argsort(-np.asarray(det_score, dtype=float), kind="stable"):
        cand = near[i] & ~matched
        if cand.any():
            j = int(np.flatnonzero(cand)[np.argmin(dist[i, cand])])
            matched[j] = True
            out[i] = 1
        elif near[i].any():
            out[i] = -1
    return out


def froc(images: Iterable[tuple[pd.DataFrame, Sequence[dict]]], tol_mm: float = 0.5) -> pd.DataFrame:
    """FROC curve over images given as ``(detections with x_mm, y_mm, score, [kept]), truth dicts``.

    Returns one row per threshold (each distinct score): ``threshold, sensitivity, fp_per_image``.
    Detections with ``kept == False`` (excluded by a rule) are ignored.
    """
    scores, labels = [], []
    n_truth = n_images = 0
    for det, truth in images:
        n_images += 1
        if "kept" in det:
            det = det[det["kept"]]
        txy = np.array([[t["x_mm"], t["y_mm"]] for t in truth]).reshape(-1, 2)
        tdiam = np.array([t.get("diameter_mm", 0.0) for t in truth])
        n_truth += len(txy)
        lab = match_image(det[["x_mm", "y_mm"]].to_numpy(), det["score"].to_numpy(), txy, tdiam, tol_mm)
        scores.append(det["score"].to_numpy(dtype=float))
        labels.append(lab)
    if n_images == 0:
        return pd.DataFrame(columns=["threshold", "sensitivity", "fp_per_image"])
    s = np.concatenate(scores) if scores else np.zeros(0)
    lab = np.concatenate(labels) if labels else np.zeros(0, dtype=int)
    order = np.argsort(-s, kind="stable")
    s, lab = s[order], lab[order]
    tp = np.cumsum(lab == 1)
    fp = np.cumsum(lab == 0)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1] if len(s) else np.zeros(0, dtype=int)
    return pd.DataFrame({
        "threshold": s[last],
        "sensitivity": tp[last] / max(n_truth, 1),
        "fp_per_image": fp[last] / n_images,
    })


def sensitivity_at(curve: pd.DataFrame, fp_per_image: float) -> float:
    """Highest sensitivity reached with at most ``fp_per_image`` false positives per image."""
    ok = curve[curve["fp_per_image"] <= fp_per_image]
    return float(ok["sensitivity"].max()) if len(ok) else 0.0


def true_extent_mm(truth: Sequence[dict], cluster: int) -> float:
    """Maximum pairwise distance of the true MCs of one cluster (its true Feret extent)."""
    xy = np.array([[t["x_mm"], t["y_mm"]] for t in truth if t["cluster"] == cluster]).reshape(-1, 2)
    if len(xy) < 2:
        return 0.0
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    return float(d.max())


def extent_errors(clusters: pd.DataFrame, truth: Sequence[dict], max_centre_distance_mm: float = 10.0) -> pd.DataFrame:
    """Per true cluster: the detected cluster with the nearest centroid (within
    ``max_centre_distance_mm``), true and measured extents and their difference (mm)."""
    rows = []
    for c in sorted({t["cluster"] for t in truth}):
        xy = np.array([[t["x_mm"], t["y_mm"]] for t in truth if t["cluster"] == c])
        centre = xy.mean(axis=0)
        true_ext = true_extent_mm(truth, c)
        best, measured = None, np.nan
        if len(clusters):
            d = np.hypot(clusters["centroid_x_mm"] - centre[0], clusters["centroid_y_mm"] - centre[1])
            j = int(np.argmin(d.to_numpy()))
            if d.iloc[j] <= max_centre_distance_mm:
                best = clusters.iloc[j]
                measured = float(best["extent_mm"])
        rows.append({"truth_cluster": c, "n_true": len(xy), "true_extent_mm": true_ext,
                     "cluster_id": None if best is None else int(best["cluster_id"]),
                     "extent_mm": measured, "error_mm": measured - true_ext})
    return pd.DataFrame(rows)


def cluster_hits(mcs: pd.DataFrame, truth: Sequence[dict], tol_mm: float = 0.5, min_hits: int = 2) -> dict:
    """Cluster-level scoring of one image: a detected cluster (``cluster_id >= 0`` in ``mcs``) is true
    when at least ``min_hits`` of its MCs lie within ``max(tol_mm, diameter)`` of MCs of one true
    cluster; a true cluster is found when some detected cluster is true for it.

    Returns ``{"n_true": true clusters, "found": of them found, "false": detected clusters that are
    true for none}``.
    """
    true_ids = sorted({t["cluster"] for t in truth})
    txy = np.array([[t["x_mm"], t["y_mm"]] for t in truth]).reshape(-1, 2)
    tcl = np.array([t["cluster"] for t in truth])
    trad = np.array([max(tol_mm, t.get("diameter_mm", 0.0)) for t in truth])
    found: set = set()
    false = 0
    ids = mcs.loc[mcs["cluster_id"] >= 0, "cluster_id"].unique() if len(mcs) else []
    for k in ids:
        xy = mcs.loc[mcs["cluster_id"] == k, ["x_mm", "y_mm"]].to_numpy(float)
        hit = set()
        if len(txy):
            d = np.hypot(xy[:, None, 0] - txy[None, :, 0], xy[:, None, 1] - txy[None, :, 1])
            near = d <= trad[None, :]
            # each detected MC votes for the true cluster of its nearest true MC within reach
            votes = [tcl[np.flatnonzero(row)[np.argmin(drow[row])]] for row, drow in zip(near, d) if row.any()]
            ids_, counts = np.unique(votes, return_counts=True) if votes else ([], [])
            hit = {int(c) for c, n in zip(ids_, counts) if n >= min_hits}
        found |= hit
        false += not hit
    return {"n_true": len(true_ids), "found": len(found & set(true_ids)), "false": int(false)}
