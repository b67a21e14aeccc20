"""MC clusters, Feret extent, distribution, RESMIN rules, edits and FROC matching (pure functions)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from NACResponseLib.errors import InputError
from NACResponseLib.mc.clusters import (
    BIRADS_GROUPED,
    DENSE_CORE,
    ClusterParams,
    assign_clusters,
    cluster_detections,
    feret,
    hull_area,
)
from NACResponseLib.mc.editing import apply_edits, recompute, validate_edits
from NACResponseLib.mc.evaluation import extent_errors, froc, match_image, sensitivity_at
from NACResponseLib.mc.longitudinal import compare_image, resmin_category, resmin_flag, summarise


def _det(xy):
    xy = np.asarray(xy, float)
    return pd.DataFrame({"x_mm": xy[:, 0], "y_mm": xy[:, 1], "score": np.arange(len(xy), 0, -1, dtype=float),
                         "kept": True, "reason": "", "source": "detector"})


def test_feret_matches_brute_force_and_known_geometry():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 30, size=(40, 2))
    brute = max(np.hypot(*(a - b)) for a, b in itertools.combinations(pts, 2))
    ext, e1, e2 = feret(pts)
    assert ext == pytest.approx(brute)
    assert np.hypot(*(e1 - e2)) == pytest.approx(brute)
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [5, 5]], float)
    assert feret(square)[0] == pytest.approx(np.sqrt(200))
    assert hull_area(square) == pytest.approx(100.0)
    assert hull_area(square[:2]) == 0.0
    assert feret(np.array([[0, 0], [1, 0], [2, 0], [3, 0]], float))[0] == pytest.approx(3.0)  # collinear


def test_birads_grouping_rules_are_configurable():
    a = [[10, 10], [12, 10], [11, 13]]            # 3 MCs within 1 cm -> cluster
    b = [[60, 60], [62, 61]]                       # only 2 -> isolated
    c = [[10, 60], [14, 60], [18, 60], [22, 61]]   # 4 MCs, chain
    lab = assign_clusters(np.array(a + b + c, float))
    assert (lab[:3] == lab[0]).all() and lab[0] >= 0
    assert (lab[3:5] == -1).all()
    assert len(set(lab[5:])) == 1 and lab[5] >= 0 and lab[5] != lab[0]
    assert lab[5] == 0  # the larger cluster gets id 0
    strict = assign_clusters(np.array(a + b + c, float), ClusterParams(min_count=4))
    assert (strict[:3] == -1).all() and (strict[5:] == 0).all()
    split = assign_clusters(np.array(c, float), ClusterParams(link_distance_mm=3.0))
    assert (split == -1).all()


def test_dense_core_decides_and_wide_link_measures():
    """DENSE_CORE: random triples 6-9 mm apart are no cluster; a dense core takes in sparse MCs up to
    10 mm away (a 5 mm link alone would cut them off)."""
    triple = [[10, 10], [17, 12], [12, 18]]
    core = [[50, 50], [52, 50], [51, 52]]
    sparse = [[59, 50], [67, 51], [75, 50]]  # each ~8 mm from the previous one
    xy = np.array(triple + core + sparse, float)
    lab = assign_clusters(xy, DENSE_CORE)
    assert (lab[:3] == -1).all() and (lab[3:] == 0).all()
    default = assign_clusters(xy)
    assert (default[:3] >= 0).all() and (default[3:] >= 0).all()  # the single 10 mm link keeps the triple
    only_core = assign_clusters(xy, ClusterParams(link_distance_mm=5.0))
    assert (only_core[3:6] == 0).all() and (only_core[6:] == -1).all()
    assert (assign_clusters(xy, BIRADS_GROUPED) == -1).all()  # 5 MCs within 1 cm: none here


def test_rule_names_and_wording_for_provenance():
    assert ClusterParams().rule()["name"] == "default"
    assert ClusterParams().describe() == ">= 3 MCs within 10 mm, 10 mm link"
    assert DENSE_CORE.rule()["name"] == "dense-core" and BIRADS_GROUPED.rule()["name"] == "birads-grouped"
    assert "BI-RADS" in BIRADS_GROUPED.rule()["reference"]
    custom = ClusterParams(link_distance_mm=5.0).rule()
    assert custom["name"] == "custom" and custom["link_distance_mm"] == 5.0
    assert ClusterParams(grouped_max_mm=15.0).rule()["name"] == "default"  # descriptors are not the rule


@pytest.mark.parametrize("points,expected", [
    ([[0, 0], [3, 1], [1, 4], [4, 4], [2, 2]], "grouped"),
    ([[0, 0], [5, 0.3], [10, -0.2], [15, 0.1], [20, 0.2], [25, 0]], "linear"),
    ([[0, 0], [30, 0], [0, 30], [30, 30], [15, 15], [5, 25]], "regional"),
    ([[0, 0], [8, 3], [16, -3], [24, 4], [32, -4], [16, 4], [8, -3], [24, -4]], "segmental"),
])
def test_distribution_descriptor(points, expected):
    _, table = cluster_detections(_det(points), ClusterParams(link_distance_mm=25.0, window_mm=25.0))
    assert len(table) == 1
    assert table.loc[0, "distribution"] == expected


def test_cluster_table_end_points_and_rejected_detections_ignored():
    det = _det([[10, 10], [20, 10], [15, 12], [40, 40]])
    det.loc[3, "kept"] = False
    mcs, table = cluster_detections(det)
    assert mcs.loc[3, "cluster_id"] == -1
    row = table.iloc[0]
    assert row["n"] == 3 and row["extent_mm"] == pytest.approx(10.0) and row["extent_cm"] == pytest.approx(1.0)
    ends = {(row["end1_x_mm"], row["end1_y_mm"]), (row["end2_x_mm"], row["end2_y_mm"])}
    assert ends == {(10.0, 10.0), (20.0, 10.0)}


@pytest.mark.parametrize("pre,post,n,cat", [
    (10, 10, 5, "SD"), (10, 7.0, 5, "SD"), (10, 6.9, 5, "PR"), (10, 12.0, 5, "PD"), (10, 11.9, 5, "SD"),
    (10, 0.0, 0, "CR"), (10, 0.0, 1, "PR"), (0, 5, 4, "PD"),
])
def test_resmin_category_boundaries(pre, post, n, cat):
    assert resmin_category(pre, post, n) == cat


def test_resmin_flag():
    assert resmin_flag("PR", "SD") and resmin_flag("CR", "PD")
    assert not resmin_flag("PR", "PR") and not resmin_flag("SD", "SD") and not resmin_flag(None, "SD")


def _clusters(points_by_id):
    det = _det([p for pts in points_by_id for p in pts])
    return cluster_detections(det)


def test_compare_image_pairs_follows_and_new():
    pre_mcs, pre_cl = _clusters([[[10, 10], [20, 10], [15, 13]], [[50, 60], [55, 60], [52, 63]]])
    # Post: first cluster shifted by 3 mm and 10 % larger; second gone except one MC; a new cluster.
    post_pts = [[13, 10], [24, 10], [18, 13], [51, 61], [80, 20], [85, 20], [82, 23]]
    post_mcs, post_cl = _clusters([post_pts])
    rows = compare_image(pre_cl, post_cl, post_mcs)
    paired = rows[rows["match"] == "paired"].iloc[0]
    assert paired["pre_extent_mm"] == pytest.approx(10.0)
    assert paired["post_extent_mm"] == pytest.approx(11.0)
    assert paired["category"] == "SD"
    followed = rows[rows["match"] == "followed"].iloc[0]
    assert followed["post_n"] == 1 and followed["category"] == "PR"
    assert (rows["match"] == "new").sum() == 1 and rows.loc[rows["match"] == "new", "category"].iloc[0] == "PD"
    summary = summarise(rows)
    assert summary["pre_extent_mm"] == pytest.approx(10.0) and summary["mc_category"] == "SD"


def test_compare_image_complete_response():
    _, pre_cl = _clusters([[[10, 10], [20, 10], [15, 13]]])
    empty = _det(np.zeros((0, 2)))
    _, post_cl = cluster_detections(empty)
    rows = compare_image(pre_cl, post_cl, empty)
    assert rows["category"].tolist() == ["CR"]
    assert summarise(rows)["mc_category"] == "CR"


def test_edits_remove_add_restore_and_recompute():
    det = _det([[10, 10], [20, 10], [15, 13], [22, 11]])
    det.loc[3, "kept"] = False
    det.loc[3, "reason"] = "linear"
    _, before, _ = recompute(det)
    assert before.loc[0, "extent_mm"] == pytest.approx(10.0)
    mcs, after, unmatched = recompute(det, {"add": [[22.1, 11.0], [12, 16]], "remove": [[20.2, 10.1], [90, 90]]})
    assert unmatched == [[90, 90]]
    assert mcs.loc[1, "reason"] == "user_removed" and not mcs.loc[1, "kept"]
    assert mcs.loc[3, "source"] == "user_restored" and mcs.loc[3, "kept"]
    assert (mcs["source"] == "user").sum() == 1
    # Remaining kept MCs: (10,10), (15,13), (22,11), (12,16) -> extent = |(22,11)-(10,10)|
    assert after.loc[0, "extent_mm"] == pytest.approx(np.hypot(12, 1))
    assert after.loc[0, "n"] == 4


def test_bad_edits_rejected():
    with pytest.raises(InputError):
        validate_edits({"add": [[1, 2, 3]]})
    with pytest.raises(InputError):
        validate_edits({"move": []})
    with pytest.raises(InputError):
        apply_edits(_det([[0, 0]]), {"remove": [["a", 1]]})


def test_match_image_and_froc_by_hand():
    truth = np.array([[10, 10], [20, 20]], float)
    det = np.array([[10.2, 10], [10.1, 10.1], [50, 50], [20, 20.3]], float)
    lab = match_image(det, np.array([4, 3, 2, 1.0]), truth)
    assert lab.tolist() == [1, -1, 0, 1]
    d = pd.DataFrame({"x_mm": det[:, 0], "y_mm": det[:, 1], "score": [4, 3, 2, 1.0], "kept": True})
    tr = [{"x_mm": 10, "y_mm": 10, "diameter_mm": 0.3, "cluster": 0}, {"x_mm": 20, "y_mm": 20, "diameter_mm": 0.3, "cluster": 0}]
    curve = froc([(d, tr), (d.iloc[:0], [])])
    assert sensitivity_at(curve, 0.0) == pytest.approx(0.5)   # threshold 3: one MC, no FP
    assert sensitivity_at(curve, 0.5) == pytest.approx(1.0)   # threshold 1: both, 1 FP over 2 images
    errs = extent_errors(pd.DataFrame({"cluster_id": [0], "centroid_x_mm": [15.0], "centroid_y_mm": [15.0],
                                       "extent_mm": [14.0]}), tr)
    assert errs.loc[0, "true_extent_mm"] == pytest.approx(np.sqrt(200))
    assert errs.loc[0, "error_mm"] == pytest.approx(14.0 - np.sqrt(200))
