"""Long -> wide tables and delta features, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from NACResponseLib.columns import WideColumn, parse
from NACResponseLib.radiomics.tables import delta_abs, delta_rel, long_table, wide_table


def _long():
    rows, feats = [], []
    values = {("P1", "pre"): 10.0, ("P1", "post"): 4.0, ("P2", "pre"): 0.0, ("P2", "post"): 0.0,
              ("P3", "pre"): 0.0, ("P3", "post"): 2.0}
    for (pid, tp), v in values.items():
        for reader, bias in (("R1", 0.0), ("R2", 1.0)):
            rows.append({"patient_id": pid, "timepoint": tp, "image": "dce_early", "reader": reader,
                         "method": "manual", "label": 1})
            feats.append({"original_firstorder_Mean": v + bias, "original_shape_VoxelVolume": -v})
    return long_table(rows, feats)


def test_relative_delta_definition():
    pre = np.array([10.0, -4.0, 0.0, 0.0, np.nan])
    post = np.array([4.0, -2.0, 0.0, 3.0, 1.0])
    np.testing.assert_array_equal(delta_abs(pre, post), [-6.0, 2.0, 0.0, 3.0, np.nan])
    out = delta_rel(pre, post)
    assert out[0] == pytest.approx(-0.6) and out[1] == pytest.approx(0.5)  # divides by |pre|
    assert out[2] == 0.0  # 0 -> 0: no change
    assert np.isnan(out[3]) and np.isnan(out[4])  # 0 -> 3 undefined (never infinite); NaN propagates
    assert not np.any(np.isinf(out))


def test_wide_table_names_and_values():
    wide = wide_table(_long())
    assert list(wide.columns[:2]) == ["patient_id", "reader"]
    assert list(zip(wide.patient_id, wide.reader)) == [("P1", "R1"), ("P1", "R2"), ("P2", "R1"), ("P2", "R2"),
                                                        ("P3", "R1"), ("P3", "R2")]
    row = wide.set_index(["patient_id", "reader"]).loc[("P1", "R2")]
    assert row["pre__dce_early__original_firstorder_Mean"] == 11.0
    assert row["post__dce_early__original_firstorder_Mean"] == 5.0
    assert row["delta_abs__pre_post__dce_early__original_firstorder_Mean"] == -6.0
    assert row["delta_rel__pre_post__dce_early__original_firstorder_Mean"] == pytest.approx(-6 / 11)
    assert row["delta_rel__pre_post__dce_early__original_shape_VoxelVolume"] == pytest.approx(0.6)  # (-4 - -10) / |-10|
    p2 = wide.set_index(["patient_id", "reader"]).loc[("P2", "R1")]
    assert p2["delta_rel__pre_post__dce_early__original_firstorder_Mean"] == 0.0
    p3 = wide.set_index(["patient_id", "reader"]).loc[("P3", "R1")]
    assert np.isnan(p3["delta_rel__pre_post__dce_early__original_firstorder_Mean"])
    # timepoints are ordered chronologically (pre before post) whatever the input order
    assert not any(c.startswith("delta_abs__post_pre") for c in wide.columns)
    assert parse("delta_rel__pre_post__dce_early__original_firstorder_Mean") == WideColumn(
        kind="delta_rel", timepoints=("pre", "post"), image="dce_early", feature="original_firstorder_Mean")
    assert parse("c2__t2w__wavelet-LLH_glcm_Contrast").feature == "wavelet-LLH_glcm_Contrast"


def test_every_pair_of_timepoints_and_missing_rois():
    long = _long()
    extra = long[long.timepoint == "post"].assign(timepoint="c2")
    extra = extra[~((extra.patient_id == "P3") & (extra.reader == "R2"))]  # one ROI missing (failed)
    wide = wide_table(pd.concat([long, extra], ignore_index=True))
    pairs = {">".join(parse(c).timepoints) for c in wide.columns if c.startswith("delta_abs")}
    assert pairs == {"pre>c2", "pre>post", "c2>post"}
    p3 = wide.set_index(["patient_id", "reader"]).loc[("P3", "R2")]
    assert np.isnan(p3["c2__dce_early__original_firstorder_Mean"])
    assert np.isnan(p3["delta_abs__pre_c2__dce_early__original_firstorder_Mean"])


def test_reader_with_several_methods_gets_method_suffix():
    long = _long()
    monai = long[long.reader == "R1"].assign(method="monai")
    wide = wide_table(pd.concat([long, monai], ignore_index=True))
    assert set(wide.reader) == {"R1.manual", "R1.monai", "R2"}
