"""The one wide-column grammar: round trips, edge cases, and that every table writer and reader uses it."""

import numpy as np
import pandas as pd
import pytest

from NACResponseLib.columns import (
    DELTA_ABS,
    DELTA_REL,
    VALUE,
    WideColumn,
    block_columns,
    build,
    column_timepoints,
    feature_id,
    parse,
    reader_selected,
    split_feature_id,
    wide_reader_ids,
)

ROUND_TRIP = [
    WideColumn(VALUE, ("pre",), "original_firstorder_Mean", "dce_early"),
    WideColumn(VALUE, ("c2",), "wavelet-LLH_glcm_Contrast", "dwi_b800"),
    WideColumn(VALUE, ("post",), "resnet50_0000"),
    WideColumn(DELTA_ABS, ("pre", "post"), "original_shape_VoxelVolume", "t2w"),
    WideColumn(DELTA_REL, ("c2", "c4"), "log-sigma-1-0-mm-3D_ngtdm_Busyness", "mg_cc_L"),
    WideColumn(DELTA_ABS, ("pre", "c2"), "bottleneck_max_017"),
]


@pytest.mark.parametrize("col", ROUND_TRIP, ids=lambda c: build(c))
def test_parse_of_build_is_identity(col):
    assert parse(build(col)) == col


def test_the_names_written_in_the_docstring():
    # spelled out by hand, as the stored tables and the README name them
    assert build(ROUND_TRIP[0]) == "pre__dce_early__original_firstorder_Mean"
    assert build(ROUND_TRIP[2]) == "post__resnet50_0000"
    assert build(ROUND_TRIP[3]) == "delta_abs__pre_post__t2w__original_shape_VoxelVolume"
    assert build(ROUND_TRIP[5]) == "delta_abs__pre_c2__bottleneck_max_017"
    assert feature_id("delta_rel__c2_c4__adc__original_glcm_Idm") == "adc__original_glcm_Idm"
    assert split_feature_id("adc__original_glcm_Idm") == ("adc", "original_glcm_Idm")


@pytest.mark.parametrize("name", ["age", "ki67", "patient_id", "delta_abs__pre__x", "delta_rel__pre_c2_post__a__b",
                                  "pre__", "__x", "pre__a__b__c", "delta_abs__pre_post"])
def test_columns_outside_the_grammar_are_not_features(name):
    assert parse(name) is None and feature_id(name) is None and column_timepoints(name) == ()


@pytest.mark.parametrize("col", [
    WideColumn(VALUE, ("pre_nac",), "f", "img"),          # '_' in a timepoint would not split back
    WideColumn(VALUE, ("pre",), "a__b", "img"),           # '__' in a feature
    WideColumn(VALUE, ("pre",), "f", "dce__early"),       # '__' in an image key
    WideColumn(DELTA_ABS, ("pre",), "f", "img"),          # a delta needs two timepoints
    WideColumn("delta", ("pre", "post"), "f"),            # unknown kind
    WideColumn(VALUE, ("delta_abs",), "f"),               # a timepoint named like a delta kind
    WideColumn(VALUE, ("pre",), "", "img"),
])
def test_build_refuses_names_that_would_not_parse_back(col):
    with pytest.raises(ValueError):
        build(col)


def test_reader_ids_and_filters():
    ids = wide_reader_ids([("R1", "manual"), ("R1", "monai"), ("R2", "manual")])
    assert ids == {("R1", "manual"): "R1.manual", ("R1", "monai"): "R1.monai", ("R2", "manual"): "R2"}
    assert reader_selected(None, "R1", "R1.monai") and reader_selected(["R1"], "R1", "R1.monai")
    assert reader_selected(["R1.monai"], "R1", "R1.monai") and not reader_selected(["R1.manual"], "R1", "R1.monai")


def _tables():
    from NACResponseLib.deep.tables import bottleneck_feature_names, wide_from_vectors
    from NACResponseLib.radiomics.tables import long_table, wide_table

    rows, feats = [], []
    for pid in ("P1", "P2"):
        for tp, v in (("pre", 10.0), ("post", 4.0)):
            rows.append({"patient_id": pid, "timepoint": tp, "image": "dce_early", "reader": "R1",
                         "method": "manual", "label": 1})
            feats.append({"original_firstorder_Mean": v, "original_shape_VoxelVolume": 2 * v})
    radiomics = wide_table(long_table(rows, feats))
    names = bottleneck_feature_names(2)
    vectors = {(pid, "R1", tp): np.arange(4.0) + (tp == "post") for pid in ("P1", "P2") for tp in ("pre", "post")}
    deep = wide_from_vectors(vectors, names)
    return radiomics, deep


def test_every_table_writer_uses_the_grammar():
    radiomics, deep = _tables()
    for table in (radiomics, deep):
        feats = [c for c in table.columns if c not in ("patient_id", "reader")]
        assert feats and all(parse(c) is not None and build(parse(c)) == c for c in feats)
    # radiomics: 2 features x (2 timepoints + abs + rel); deep: 4 features x (2 timepoints + abs)
    assert sum(parse(c).kind == DELTA_REL for c in radiomics.columns[2:]) == 2
    assert block_columns(deep.columns, "delta_abs__pre_post") == [f"delta_abs__pre_post__{n}" for n in
                                                                  ("bottleneck_mean_000", "bottleneck_mean_001",
                                                                   "bottleneck_max_000", "bottleneck_max_001")]
    np.testing.assert_allclose(deep[block_columns(deep.columns, "delta_abs__pre_post")].to_numpy(), 1.0)


def test_modelling_reads_radiomics_and_deep_tables_through_the_grammar():
    from NACResponseLib.modelling.data import columns_available_by
    from NACResponseLib.modelling.selection import ICCWhitelist

    radiomics, deep = _tables()
    X = pd.concat([radiomics.drop(columns=["patient_id", "reader"]), deep.drop(columns=["patient_id", "reader"]),
                   pd.DataFrame({"age": [50.0, 60.0]})], axis=1)
    at_pre = columns_available_by(X.columns, "pre")
    expected_pre = ["pre__dce_early__original_firstorder_Mean", "pre__dce_early__original_shape_VoxelVolume",
                    "pre__bottleneck_mean_000", "pre__bottleneck_mean_001", "pre__bottleneck_max_000",
                    "pre__bottleneck_max_001", "age"]
    assert at_pre == expected_pre
    assert set(columns_available_by(X.columns, "post")) == set(X.columns)
    # the ICC whitelist addresses radiomics by feature id, at every timepoint and delta
    sel = ICCWhitelist({"dce_early__original_firstorder_Mean": True, "dce_early__original_shape_VoxelVolume": False},
                       unknown="drop").fit(X)
    kept = list(sel.get_feature_names_out())
    assert kept == [c for c in X.columns if c.endswith("__dce_early__original_firstorder_Mean")] and len(kept) == 4
