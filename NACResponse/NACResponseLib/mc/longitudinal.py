"""Pre/post-NAC comparison of MC clusters, RESMIN categories and the RESMIN flag.

Why: after NAC a mass can shrink while its malignant MCs stay as extensive as before; residual
cancer is then often found around them, so the surgical extent follows the residual MC extent.

Rules (the response rules used for MCs in the RESMIN study):

- clusters are compared only within the same view and laterality (e.g. ``mg_cc_L`` pre vs post);
- matching: pre and post clusters are paired by centroid distance (Hungarian assignment, pairs
  further apart than ``max_match_mm``, default :data:`MAX_MATCH_MM` = 20 mm, are not paired: compression differs between
  exams, so positions are only approximately reproducible);
- an unpaired pre cluster is followed by the post MCs lying within its half-extent plus
  ``follow_margin_mm`` (default 5 mm) of its centroid: their Feret extent is its residual extent;
- category from the extents: **CR** no MCs remain; **PR** extent decrease > 30 %; **PD** extent
  increase >= 20 % (or a new cluster); **SD** otherwise;
- per patient and laterality the extent is the largest over views and clusters (pre: largest pre
  cluster; post: largest residual), and its category follows the same rule;
- **RESMIN flag**: the tumour responded (RECIST PR or CR from the MRI/US measurements) while the
  MC extent is SD or PD.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from .clusters import feret

#: Pre and post clusters further apart than this (mm) are not paired (see the module docstring).
MAX_MATCH_MM = 20.0

RESMIN_RULE = ("CR: no MCs remain; PR: > 30 % decrease of the MC extent; PD: >= 20 % increase (or a new "
               "cluster); SD otherwise")


def resmin_category(pre_extent_mm: float, post_extent_mm: float, post_n: int) -> str:
    """RESMIN MC response category from the pre and post extents (mm) and the number of post MCs."""
    if post_n <= 0:
        return "CR"
    pre, post = float(pre_extent_mm), float(post_extent_mm)
    if not np.isfinite(pre) or pre <= 0:
        return "PD" if post > 0 else "SD"
    change = (post - pre) / pre
    if change < -0.30:
        return "PR"
    if change >= 0.20 - 1e-9:
        return "PD"
    return "SD"


def resmin_flag(tumour_category: str | None, mc_category: str | None) -> bool:
    """True when the tumour responded (RECIST PR/CR) but the MC extent did not (SD/PD)."""
    return str(tumour_category).upper() in ("PR", "CR") and str(mc_category).upper() in ("SD", "PD")


def match_clusters(pre: pd.DataFrame, post: pd.DataFrame, max_match_mm: float = MAX_MATCH_MM) -> list[tuple[int, int, float]]:
    """Pairs ``(pre cluster_id, post cluster_id, centroid distance mm)`` by Hungarian assignment."""
    if len(pre) == 0 or len(post) == 0:
        return []
    a = pre[["centroid_x_mm", "centroid_y_mm"]].to_numpy(float)
    b = post[["centroid_x_mm", "centroid_y_mm"]].to_numpy(float)
    d = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    cost = np.where(d <= max_match_mm, d, 1e6)
    ri, ci = linear_sum_assignment(cost)
    return [(int(pre["cluster_id"].iloc[i]), int(post["cluster_id"].iloc[j]), float(d[i, j]))
            for i, j in zip(ri, ci, strict=True) if d[i, j] <= max_match_mm]


def compare_image(pre_clusters: pd.DataFrame, post_clusters: pd.DataFrame, post_mcs: pd.DataFrame, *,
                  max_match_mm: float = MAX_MATCH_MM, follow_margin_mm: float = 5.0) -> pd.DataFrame:
    """Per pre cluster (and per new post cluster) of one view/laterality: extents, change, category.

    ``post_mcs``: the post MCs (``x_mm, y_mm`` and optionally ``kept``) used to follow unpaired
    pre clusters.  Residual end points are reported for drawing.
    """
    pairs = match_clusters(pre_clusters, post_clusters, max_match_mm)
    by_pre = {p: (q, d) for p, q, d in pairs}
    post_idx = post_clusters.set_index("cluster_id") if len(post_clusters) else None
    mcs = post_mcs[post_mcs["kept"]] if "kept" in post_mcs and len(post_mcs) else post_mcs
    mxy = mcs[["x_mm", "y_mm"]].to_numpy(float) if len(mcs) else np.zeros((0, 2))
    rows = []
    for _, pc in pre_clusters.iterrows():
        pid = int(pc["cluster_id"])
        row = {"pre_cluster_id": pid, "pre_n": int(pc["n"]), "pre_extent_mm": float(pc["extent_mm"]),
               "pre_centroid_x_mm": float(pc["centroid_x_mm"]), "pre_centroid_y_mm": float(pc["centroid_y_mm"])}
        if pid in by_pre:
            q, dist = by_pre[pid]
            qc = post_idx.loc[q]
            row.update({"post_cluster_id": q, "match": "paired", "match_distance_mm": dist, "post_n": int(qc["n"]),
                        "post_extent_mm": float(qc["extent_mm"]),
                        "end1_x_mm": float(qc["end1_x_mm"]), "end1_y_mm": float(qc["end1_y_mm"]),
                        "end2_x_mm": float(qc["end2_x_mm"]), "end2_y_mm": float(qc["end2_y_mm"])})
        else:
            radius = float(pc["extent_mm"]) / 2 + follow_margin_mm
            near = mxy[np.hypot(mxy[:, 0] - pc["centroid_x_mm"], mxy[:, 1] - pc["centroid_y_mm"]) <= radius] \
                if len(mxy) else mxy
            ext, e1, e2 = feret(near) if len(near) else (0.0, np.full(2, np.nan), np.full(2, np.nan))
            row.update({"post_cluster_id": -1, "match": "followed", "match_distance_mm": np.nan,
                        "post_n": int(len(near)), "post_extent_mm": float(ext),
                        "end1_x_mm": float(e1[0]), "end1_y_mm": float(e1[1]),
                        "end2_x_mm": float(e2[0]), "end2_y_mm": float(e2[1])})
        rows.append(row)
    paired_post = {q for _, q, _ in pairs}
    for _, qc in post_clusters.iterrows():
        if int(qc["cluster_id"]) in paired_post:
            continue
        rows.append({"pre_cluster_id": -1, "pre_n": 0, "pre_extent_mm": 0.0, "pre_centroid_x_mm": np.nan,
                     "pre_centroid_y_mm": np.nan, "post_cluster_id": int(qc["cluster_id"]), "match": "new",
                     "match_distance_mm": np.nan, "post_n": int(qc["n"]), "post_extent_mm": float(qc["extent_mm"]),
                     "end1_x_mm": float(qc["end1_x_mm"]), "end1_y_mm": float(qc["end1_y_mm"]),
                     "end2_x_mm": float(qc["end2_x_mm"]), "end2_y_mm": float(qc["end2_y_mm"])})
    out = pd.DataFrame(rows)
    if len(out):
        out["change_pct"] = np.where(out["pre_extent_mm"] > 0,
                                     100.0 * (out["post_extent_mm"] - out["pre_extent_mm"])
                                     / out["pre_extent_mm"].where(out["pre_extent_mm"] > 0, 1.0), np.nan)
        out["category"] = [resmin_category(a, b, n) for a, b, n in
                           zip(out["pre_extent_mm"], out["post_extent_mm"], out["post_n"], strict=True)]
    return out


def summarise(image_rows: pd.DataFrame) -> dict:
    """Patient/laterality summary over the views' rows of :func:`compare_image` (module rules)."""
    if len(image_rows) == 0:
        return {"pre_extent_mm": 0.0, "post_extent_mm": 0.0, "post_n": 0, "change_pct": np.nan,
                "mc_category": "none"}
    pre = image_rows[image_rows["pre_cluster_id"] >= 0]
    pre_ext = float(pre["pre_extent_mm"].max()) if len(pre) else 0.0
    post_ext = float(image_rows["post_extent_mm"].max())
    post_n = int(image_rows["post_n"].sum())
    if pre_ext <= 0:
        return {"pre_extent_mm": 0.0, "post_extent_mm": post_ext, "post_n": post_n, "change_pct": np.nan,
                "mc_category": "PD" if post_n else "none"}
    return {"pre_extent_mm": pre_ext, "post_extent_mm": post_ext, "post_n": post_n,
            "change_pct": 100.0 * (post_ext - pre_ext) / pre_ext,
            "mc_category": resmin_category(pre_ext, post_ext, post_n)}


def resmin_statement(summary: dict, tumour_category: str | None) -> str:
    """One sentence for the report: residual MC extent to be removed and why (or why not)."""
    mc = summary.get("mc_category")
    post = summary.get("post_extent_mm", 0.0)
    pre = summary.get("pre_extent_mm", 0.0)
    if resmin_flag(tumour_category, mc):
        return (f"RESMIN: the tumour responded (RECIST {tumour_category}) but the MC extent did not "
                f"({mc}: {pre:.1f} -> {post:.1f} mm); residual cancer is often found around persisting MCs, so "
                f"the resection should cover the residual MC extent of {post:.1f} mm ({post / 10:.1f} cm).")
    if mc == "CR":
        return f"No MCs remain (pre extent {pre:.1f} mm); tumour RECIST {tumour_category or 'unknown'}."
    if mc == "none":
        return "No MC cluster at baseline."
    return (f"MC extent {pre:.1f} -> {post:.1f} mm ({mc}); tumour RECIST {tumour_category or 'unknown'}; "
            "no discordance flagged.")
