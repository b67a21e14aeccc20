"""Slicer-free helpers of NACResponseSlicerLib, checked against independent references
(SimpleITK's own index-to-point mapping, the core's RECIST measurements, the real CLI parser)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "NACResponse"))

from NACResponseSlicerLib import (  # noqa: E402
    cli_calls,
    dependencies,
    evaluation_curves,
    ijk_ras,
    mc_points,
    mc_results,
    naming,
    prediction_text,
    recist_lines,
    staging,
    table_data,
)


def _oblique(dimension=3):
    rng = np.random.default_rng(0)
    if dimension == 2:
        image = sitk.Image(7, 5, sitk.sitkFloat32)
        image.SetSpacing((0.07, 0.09))
        image.SetOrigin((3.0, -4.0))
        a = 0.3
        image.SetDirection((math.cos(a), -math.sin(a), math.sin(a), math.cos(a)))
        return image
    image = sitk.Image(6, 5, 4, sitk.sitkFloat32)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((10.0, -20.0, 5.0))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    image.SetDirection(tuple(q.ravel()))
    return image


# ---- geometry ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dimension", [2, 3])
def test_ijk_to_ras_agrees_with_simpleitk(dimension):
    image = _oblique(dimension)
    matrix = ijk_ras.ijk_to_ras(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    indices = [(0, 0, 0), (3, 2, 1), (5, 4, 0)] if dimension == 3 else [(0, 0), (3, 2), (6, 4)]
    ras = ijk_ras.ras_from_index(matrix, indices)
    for index, point in zip(indices, ras):
        lps = image.TransformIndexToPhysicalPoint(index)
        expected = [-lps[0], -lps[1], lps[2] if dimension == 3 else 0.0]
        np.testing.assert_allclose(point, expected, atol=1e-9)
    np.testing.assert_allclose(ijk_ras.index_from_ras(matrix, ras)[:, :dimension], np.asarray(indices, float),
                               atol=1e-9)


@pytest.mark.parametrize("dimension", [2, 3])
def test_sitk_geometry_inverts_ijk_to_ras(dimension):
    image = _oblique(dimension)
    matrix = ijk_ras.ijk_to_ras(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    spacing, origin, direction = ijk_ras.sitk_geometry(matrix, dimension)
    np.testing.assert_allclose(spacing, image.GetSpacing(), atol=1e-12)
    np.testing.assert_allclose(origin, image.GetOrigin(), atol=1e-12)
    np.testing.assert_allclose(direction, image.GetDirection(), atol=1e-12)


def test_identity_lps_image_has_the_known_ras_matrix():
    matrix = ijk_ras.ijk_to_ras((1.0, 2.0, 3.0), (5.0, 6.0, 7.0), np.eye(3).ravel())
    np.testing.assert_allclose(matrix, [[-1, 0, 0, -5], [0, -2, 0, -6], [0, 0, 3, 7], [0, 0, 0, 1]])


# ---- names and display ---------------------------------------------------------------------------

@pytest.mark.parametrize("key,label", [("dce_early", "DCE-early"), ("dwi_b800", "DWI-b800"), ("mg_cc_L", "MG-CC-L"),
                                       ("adc", "ADC"), ("custom", "custom")])
def test_image_labels(key, label):
    assert naming.image_label(key) == label


def test_volume_name():
    assert naming.volume_name("P012", "pre", "dce_early") == "P012 pre DCE-early"


def test_window_level_ignores_air_and_outliers():
    rng = np.random.default_rng(1)
    volume = np.zeros((20, 20, 20))
    volume[5:15, 5:15, 5:15] = rng.uniform(100, 200, size=(10, 10, 10))
    volume[0, 0, 0] = 1e6  # one hot voxel
    window, level = naming.window_level(volume)
    assert 90 < level - window / 2 < 110 and 190 < level + window / 2 < 210
    assert naming.window_level(np.zeros((3, 3)))[0] == 1.0  # constant image: a unit window, no division by 0


# ---- tables --------------------------------------------------------------------------------------

def test_table_columns_types_and_missing_values():
    frame = pd.DataFrame({"patient_id": ["P1", None], "n": [1, 2], "x": [0.5, np.nan], "kept": [True, False],
                          "m": pd.array([1, None], dtype="Int64")})
    columns = {c.name: c for c in table_data.table_columns(frame)}
    assert columns["patient_id"].kind == "string" and columns["patient_id"].values == ("P1", "")
    assert columns["n"].kind == "int" and columns["n"].values == (1, 2)
    assert columns["x"].kind == "double" and math.isnan(columns["x"].values[1])
    assert columns["kept"].kind == "int" and columns["kept"].values == (1, 0)
    assert columns["m"].kind == "double" and columns["m"].values[0] == 1.0 and math.isnan(columns["m"].values[1])
    assert len(table_data.table_columns(frame, max_rows=1)[0].values) == 1


def test_case_feature_rows_follow_the_wide_column_convention():
    wide = pd.DataFrame({"patient_id": ["P1", "P2"], "reader": ["R1", "R1"],
                         "pre__dce_early__original_firstorder_Mean": [1.0, 2.0],
                         "delta_rel__pre_post__dce_early__original_shape_VoxelVolume": [-0.5, 0.1]})
    rows = table_data.case_feature_rows(wide, "P2", "R1")
    assert rows["feature"].tolist() == ["original_firstorder_Mean", "original_shape_VoxelVolume"]
    assert rows["timepoint"].tolist() == ["pre", "delta_rel pre_post"]
    assert rows["value"].tolist() == [2.0, 0.1]
    with pytest.raises(KeyError):
        table_data.case_feature_rows(wide, "P9")


# ---- RECIST line end points --------------------------------------------------------------------

def test_recist_segment_of_a_box_with_anisotropic_spacing():
    mask = np.zeros((3, 10, 12), np.uint8)
    mask[1, 2:6, 3:11] = 1  # 4 rows x 8 columns on slice 1
    length, start, end = recist_lines.longest_inplane_segment(mask, (0.5, 2.0, 3.0))
    assert length == pytest.approx(math.hypot(8 * 0.5, 4 * 2.0))
    assert start[2] == end[2] == 1
    assert sorted([start[0], end[0]]) == [2.5, 10.5] and sorted([start[1], end[1]]) == [1.5, 5.5]
    assert recist_lines.longest_inplane_segment(np.zeros((2, 2, 2)), (1, 1, 1)) is None


def test_recist_length_matches_the_core_measurement():
    from NACResponseLib.segmentation.measurements import longest_inplane_diameter_mm

    rng = np.random.default_rng(5)
    z, y, x = np.mgrid[:12, :40, :40]
    mask = (((x - 20) / 14.0) ** 2 + ((y - 18) / 8.0) ** 2 + ((z - 6) / 4.0) ** 2 <= 1).astype(np.uint8)
    mask &= (rng.random(mask.shape) > 0.05).astype(np.uint8)
    spacing = (0.6, 0.9, 2.0)
    image = sitk.GetImageFromArray(mask)
    image.SetSpacing(spacing)
    expected, where = longest_inplane_diameter_mm(image)
    length, start, end = recist_lines.longest_inplane_segment(mask, spacing)
    assert length == pytest.approx(expected, rel=1e-9)
    assert start[2] == where
    np.testing.assert_allclose(np.hypot((end[0] - start[0]) * spacing[0], (end[1] - start[1]) * spacing[1]), length)


# ---- microcalcification points ---------------------------------------------------------------------

def test_mc_points_follow_the_detector_convention_and_round_trip():
    image = _oblique(2)
    spacing = 0.07
    image.SetSpacing((spacing, spacing))
    matrix = ijk_ras.ijk_to_ras(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    rows_cols = np.array([[2, 3], [4, 6]])
    xy_mm = (rows_cols[:, ::-1] + 0.5) * spacing  # x_mm = (col + 0.5) * s, y_mm = (row + 0.5) * s
    ras = mc_points.ras_from_mm(xy_mm, spacing, matrix)
    for (row, col), point in zip(rows_cols, ras):
        lps = image.TransformIndexToPhysicalPoint((int(col), int(row)))
        np.testing.assert_allclose(point[:2], [-lps[0], -lps[1]], atol=1e-9)
    np.testing.assert_allclose(mc_points.mm_from_ras(ras, spacing, matrix), xy_mm, atol=1e-9)
    assert mc_points.mm_from_ras(np.zeros((0, 3)), spacing, matrix).shape == (0, 2)


# ---- dependency plan -------------------------------------------------------------------------------

REQS = ["numpy>=1.26", "torch>=2.2", "pyradiomics-bhklab>=3.1.4,<4", "dask[distributed]>=2024.1"]


def test_plan_routes_torch_to_the_pytorch_extension():
    plan = dependencies.plan_installation(REQS, True, satisfied=lambda r: r.startswith("numpy"))
    assert plan.torch == "torch>=2.2" and plan.blocked is None
    assert "torch" not in " ".join(plan.ensure)
    assert dependencies.torch_version_requirement(plan.torch) == ">=2.2"
    no_extension = dependencies.plan_installation(REQS, False, satisfied=lambda r: False)
    assert "PyTorch extension" in no_extension.blocked  # never pip-installed (a CUDA build would come)
    assert not any(r.startswith("torch") for r in no_extension.ensure)


def test_an_importable_radiomics_counts_as_installed(monkeypatch):
    """SlicerRadiomics ships pyradiomics under another distribution name: its module is enough."""
    monkeypatch.setattr(dependencies.importlib.util, "find_spec", lambda name: object() if name == "radiomics" else None)
    plan = dependencies.plan_installation(REQS, True, satisfied=lambda r: False)
    assert not any(r.startswith("pyradiomics") for r in plan.ensure)
    monkeypatch.setattr(dependencies.importlib.util, "find_spec", lambda name: None)
    plan = dependencies.plan_installation(REQS, True, satisfied=lambda r: False)
    assert "pyradiomics-bhklab>=3.1.4,<4" in plan.ensure


def test_plan_is_empty_when_everything_is_installed():
    plan = dependencies.plan_installation(REQS, True, satisfied=lambda r: True)
    assert plan.empty and plan.describe() == []


def test_is_satisfied_checks_versions():
    versions = {"numpy": "1.25.0", "pandas": "2.2.0"}

    def version_of(name):
        import importlib.metadata

        if name not in versions:
            raise importlib.metadata.PackageNotFoundError(name)
        return versions[name]

    assert not dependencies.is_satisfied("numpy>=1.26", version_of)
    assert dependencies.is_satisfied("pandas>=2.0", version_of)
    assert not dependencies.is_satisfied("scipy", version_of)
    assert dependencies.is_satisfied("scipy; python_version < '3'", version_of)


def test_requirement_groups_of_the_shipped_file():
    groups = dependencies.read_requirement_groups(ROOT / "NACResponse" / "Resources" / "requirements.txt")
    assert {"core", "radiomics", "stats", "deep"} <= set(groups)
    assert any(r.startswith("pyradiomics-bhklab") for r in groups["radiomics"])
    assert not any(r.startswith(("torch", "pyradiomics", "monai")) for r in groups["core"])
    wanted = dependencies.requirements_for(groups, ["core", "radiomics"])
    assert wanted == groups["core"] + groups["radiomics"]
    with pytest.raises(ValueError, match="unknown dependency groups"):
        dependencies.requirements_for(groups, ["gpu"])


def test_read_requirement_groups_rejects_garbage(tmp_path):
    bad = tmp_path / "requirements.txt"
    bad.write_text("# [core]\nnumpy>=1\nthis is not a requirement\n")
    with pytest.raises(ValueError, match="invalid requirement"):
        dependencies.read_requirement_groups(bad)
    bad.write_text("numpy>=1\n")
    with pytest.raises(ValueError, match="not in a group"):
        dependencies.read_requirement_groups(bad)


# ---- DICOM staging, prediction text ------------------------------------------------------------------

def test_stage_files_keeps_same_named_files_apart(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "IM1").write_bytes(b"one")
    (tmp_path / "b" / "IM1").write_bytes(b"two")
    out = Path(staging.stage_files([tmp_path / "a" / "IM1", tmp_path / "b" / "IM1"], str(tmp_path / "stage")))
    assert sorted(p.read_bytes() for p in out.iterdir()) == [b"one", b"two"]
    with pytest.raises(FileNotFoundError):
        staging.stage_files([tmp_path / "missing"], str(tmp_path / "stage2"))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A real saved model of the core (logistic, two operating points) and a few cases."""
    from NACResponseLib.modelling.artefact import save_model
    from NACResponseLib.modelling.pipeline import ModelSpec, fit_model
    from NACResponseLib.modelling.selection import SelectionConfig

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 6)), columns=[f"pre__t2w__original_firstorder_F{i}" for i in range(6)])
    y = ((X.iloc[:, 0] - X.iloc[:, 1] + rng.normal(0, 0.5, 60)) > 0).astype(int).to_numpy()
    pipe = fit_model(ModelSpec("radiomics", "logistic", SelectionConfig(lasso=False, univariate_alpha=0.5)), X, y)
    folder = tmp_path_factory.mktemp("model") / "m"
    save_model(folder, pipe, target="pcr", kind="radiomics", training_summary={"n": 60}, provenance={},
               operating_points={"early": {"threshold": 0.3}, "late": {"threshold": 0.7}}, X_train=X)
    return folder, X


def test_prediction_text_of_a_real_core_prediction(saved_model):
    from NACResponseLib.modelling.predict import predict_case

    folder, X = saved_model
    prediction = predict_case(folder, X.iloc[[0]], top_n=3)
    p = prediction["probability"]
    text = prediction_text.prediction_summary(prediction)
    assert f"P(pcr) = {p:.3f}" in text
    for name, threshold in (("early", 0.3), ("late", 0.7)):
        expected = "likely responder" if p >= threshold else "likely non-responder"
        assert f"{name}: {expected} (threshold {threshold:.3f})" in text
    top = prediction_text.top_features_frame(prediction)
    assert len(top) == 3 and top["feature"].iloc[0] == prediction["top_features"][0]["feature"]
    assert any(c.startswith("contribution (") for c in top.columns)
    assert prediction_text.top_features_frame({}) is None
    assert "no prediction" in prediction_text.prediction_summary({"patient_id": "P9", "error": "no features"})


# ---- cohort ROC and calibration ------------------------------------------------------------------------

def test_roc_points_of_a_hand_worked_example_with_ties():
    """Scores 0.9 (+), 0.8 (-), 0.8 (+), 0.3 (-): thresholds 0.9, 0.8 (one step for the tie), 0.3."""
    from NACResponseLib.modelling.evaluation import roc_points

    fpr, tpr = roc_points([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.3])
    np.testing.assert_allclose(fpr, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0.0, 0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="both outcomes"):
        roc_points([1, 1], [0.2, 0.3])


def test_curves_from_an_evaluation_file_in_the_core_format(tmp_path):
    from NACResponseLib.modelling.calibration import decile_table
    from NACResponseLib.modelling.report import results_to_json

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 40)
    p = np.clip(0.5 * y + rng.random(40) * 0.5, 0, 1)
    results = {"models": {"radiomics": {"y": y.tolist(), "oof": p.tolist(), "deciles": decile_table(y, p),
                                        "metrics": {"auc": {"estimate": 0.8, "ci_low": 0.7, "ci_high": 0.9}}}}}
    folder = tmp_path / "reports" / "models" / "pcr"
    folder.mkdir(parents=True)
    (folder / "evaluation.json").write_text(results_to_json(results))
    found = evaluation_curves.find_evaluations(tmp_path / "reports")
    assert list(found) == ["pcr"]
    evaluation = evaluation_curves.load_evaluation(found["pcr"])
    roc = evaluation_curves.roc_frames(evaluation)["radiomics"]
    assert roc["fpr"].iloc[0] == 0 and roc["tpr"].iloc[-1] == 1 and roc["fpr"].is_monotonic_increasing
    calibration = evaluation_curves.calibration_frames(evaluation)["radiomics"]
    np.testing.assert_allclose(calibration["observed"], decile_table(y, p)["observed"])
    assert "radiomics AUC 0.800 [0.700-0.900]" in evaluation_curves.auc_text(evaluation)
    assert evaluation_curves.find_evaluations(tmp_path / "nowhere") == {}
    (folder / "evaluation.json").write_text("{not json")
    with pytest.raises(ValueError, match="evaluation.json"):
        evaluation_curves.load_evaluation(folder / "evaluation.json")


# ---- microcalcification edits and RESMIN text ---------------------------------------------------------

def test_mc_edits_reproduce_the_users_points_through_the_core():
    """Edits computed from a user's point list, applied by the core, keep exactly the user's points."""
    from NACResponseLib.mc.editing import apply_edits, validate_edits

    detections = pd.DataFrame({"x_mm": [1.0, 5.0, 9.0, 20.0], "y_mm": [1.0, 5.0, 9.0, 3.0],
                               "kept": [True, True, True, False], "reason": ["", "", "", "low contrast"]})
    kept = mc_results.kept_points_mm(detections.assign(patient_id="P1", timepoint="pre", image="mg_cc_L"),
                                     "P1", "pre", "mg_cc_L")
    assert kept.tolist() == [[1.0, 1.0], [5.0, 5.0], [9.0, 9.0]]
    user = np.array([[1.1, 0.9], [9.0, 9.0], [30.0, 30.0], [20.2, 3.0]])  # moved a bit, deleted one, 2 added
    edits = mc_results.edits_from_points(kept, user)
    assert validate_edits(edits) == edits
    assert edits["remove"] == [[5.0, 5.0]]
    edited, unmatched = apply_edits(detections, edits)
    assert unmatched == []
    result = edited[edited["kept"]][["x_mm", "y_mm"]].to_numpy()
    distances = np.hypot(result[:, None, 0] - user[None, :, 0], result[:, None, 1] - user[None, :, 1])
    assert len(result) == len(user) and (distances.min(axis=0) <= mc_results.MATCH_RADIUS_MM).all()
    assert mc_results.edits_from_points(np.zeros((0, 2)), user[:1]) == {"add": [user[0].tolist()], "remove": []}


def test_largest_cluster_and_resmin_text():
    clusters = pd.DataFrame({"patient_id": ["P1"] * 3, "timepoint": ["pre", "pre", "post"],
                             "image": ["mg_cc_L"] * 3, "extent_mm": [12.0, 31.0, 8.0], "n": [5, 9, 4]})
    assert mc_results.largest_cluster(clusters, "P1", "pre", "mg_cc_L")["extent_mm"] == 31.0
    assert mc_results.largest_cluster(clusters, "P1", "c2", "mg_cc_L") is None
    images = pd.DataFrame({"patient_id": ["P1"], "image": ["mg_cc_L"], "laterality": ["L"]})
    assert mc_results.laterality_of(images, "P1", "mg_cc_L") == "L"
    resmin = pd.DataFrame([{"patient_id": "P1", "laterality": "L", "pre_extent_mm": 31.0, "post_extent_mm": 8.0,
                            "change_pct": -74.2, "mc_category": "PR", "tumour_recist": "CR", "resmin_flag": True,
                            "statement": "RESMIN: ..."}])
    text = mc_results.resmin_text(resmin, "P1", "L")
    assert "MC PR (3.10 -> 0.80 cm, -74%)" in text and "tumour RECIST CR" in text and "RESMIN flag: YES" in text
    assert "no pre/post" in mc_results.resmin_text(resmin, "P2", "L")
    assert "No comparison" in mc_results.resmin_text(None, "P1", "L")


# ---- CLI calls parse with the real parser -------------------------------------------------------------

def _registered_commands(parser) -> set[str]:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


@pytest.mark.parametrize("name", sorted(cli_calls.EXAMPLES))
def test_panel_commands_parse_with_the_real_cli(name, tmp_path):
    from NACResponseLib.cli import build_parser

    parser = build_parser()
    arguments = cli_calls.EXAMPLES[name](tmp_path)
    if arguments[0] not in _registered_commands(parser):
        pytest.skip(f"command group {arguments[0]!r} is not registered in NACResponseLib.commands yet")
    args = parser.parse_args(["--progress", "json", *arguments])
    assert callable(args.func)
