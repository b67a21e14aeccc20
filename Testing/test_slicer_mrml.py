"""The Slicer layer on real MRML (slicer-core): the in-Slicer self-test in full, and one test per
behaviour that only real MRML shows (colour tables, units, layouts, transforms, table arrays).

The headless application (Testing/headless_slicer.py) is Slicer's startup redone: scene, application
logic, the module logics with their scene, ``slicer.app`` / ``slicer.mrmlScene`` / ``slicer.modules``.
Panel widgets are driven with recording stand-ins for their .ui widgets (the Qt widgets themselves
need a real Slicer).
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "NACResponse"))

pytest.importorskip("slicer_core", reason="slicer-core (Slicer's Qt-free libraries, the test extra) is not installed")


@pytest.fixture(scope="module")
def slicer_app():
    import headless_slicer

    return headless_slicer.start()


@pytest.fixture
def scene(slicer_app):
    import slicer

    slicer.mrmlScene.Clear()
    return slicer.mrmlScene


class _Case(unittest.TestCase):
    def runTest(self) -> None:  # the self-test functions take a TestCase for its assertions
        pass


class Recorder:
    """A stand-in for a .ui widget: records every call and attribute set, in order."""

    def __init__(self, name: str = "ui", log=None) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_log", log if log is not None else [])

    def __getattr__(self, attribute):
        child = Recorder(f"{self._name}.{attribute}", self._log)
        object.__setattr__(self, attribute, child)
        return child

    def __setattr__(self, attribute, value) -> None:
        self._log.append((f"{self._name}.{attribute}", "=", value))

    def __call__(self, *args, **kwargs):
        self._log.append((self._name, args, kwargs))
        return None

    def calls(self, suffix: str) -> list:
        return [entry for entry in self._log if entry[0].endswith(suffix)]


class FakeTasks:
    """The TaskPanel's interface, recording which dependency groups each step asked for."""

    def __init__(self) -> None:
        self.ensured, self.started = [], []

    def ensure(self, groups) -> None:
        self.ensured.append(tuple(groups))

    def run(self, arguments, title, needs=("core",), onSuccess=None, onFinished=None) -> None:
        self.started.append((list(arguments), tuple(needs)))


# ---- the self-test, in full --------------------------------------------------------------------

@pytest.mark.slow
def test_selftest_passes_in_full_with_units_twice(slicer_app):
    """Every self-test passes with the Units logic present; a second run in the same session (as a
    second Reload and Test) passes too."""
    import slicer

    from NACResponseSlicerLib import selftest

    assert slicer.modules.units.logic().GetMRMLScene() is slicer.mrmlScene
    for _ in range(2):
        results = selftest.runAll(_Case())
        assert [r for r in results if r.status != "passed"] == [], selftest.summary(results)
        assert len(results) == len(selftest.TESTS)


def test_a_failing_selftest_fails_alone(slicer_app, monkeypatch):
    from NACResponseSlicerLib import selftest

    def test_broken(t):
        raise AssertionError("broken on purpose")

    def test_skipped(t):
        t.skipTest("not here")

    monkeypatch.setattr(selftest, "test_broken", test_broken, raising=False)
    monkeypatch.setattr(selftest, "test_skipped", test_skipped, raising=False)
    results = selftest.runAll(_Case(), names=["test_broken", "test_markups", "test_skipped", "test_geometry_round_trip"])
    assert [(r.name, r.status) for r in results] == [
        ("test_broken", "failed"), ("test_markups", "passed"), ("test_skipped", "skipped"),
        ("test_geometry_round_trip", "passed")]
    text = selftest.summary(results)
    assert "2 passed, 1 failed, 1 skipped" in text and "broken on purpose" in text


# ---- colour tables, units -----------------------------------------------------------------------

def test_importing_a_label_map_keeps_slicers_shared_colour_tables(scene):
    import SimpleITK as sitk
    import slicer

    from NACResponseSlicerLib.segmentations import (
        exportToLabelmapImage,
        importLabelmapImage,
        newSegmentationNode,
    )
    from NACResponseSlicerLib.volumes import volumeFromImage

    colours = scene.GetNumberOfNodesByClass("vtkMRMLColorNode")
    assert scene.GetNodeByID("vtkMRMLColorTableNodeLabels") is not None
    image = sitk.Image(6, 5, 4, sitk.sitkInt16)
    reference = volumeFromImage(image, "reference")
    mask = sitk.Image(6, 5, 4, sitk.sitkUInt8)
    mask[2, 2, 2] = 1
    node = newSegmentationNode("seg", reference)
    ids = importLabelmapImage(mask, node, reference, "tumour")
    exportToLabelmapImage(node, reference, ids)
    assert scene.GetNumberOfNodesByClass("vtkMRMLColorNode") == colours
    assert scene.GetNodeByID("vtkMRMLColorTableNodeLabels") is not None
    labelmap = volumeFromImage(mask, "later label map", labelmap=True)
    assert labelmap.GetDisplayNode().GetColorNode() is not None  # later label maps still have colours
    assert slicer.mrmlScene.GetFirstNodeByName("__nacresponse_import__") is None


def test_line_length_follows_the_scene_length_unit(scene):
    import slicer

    from NACResponseSlicerLib.markups import lineWithLength, sceneLengthUnit

    line = lineWithLength([0, 0, 0], [30, 40, 0], "line")
    measurement = line.GetMeasurement("length")
    assert measurement.GetValue() == pytest.approx(50.0)
    selectionNode = slicer.app.applicationLogic().GetSelectionNode()
    unitNode = scene.GetNodeByID(selectionNode.GetUnitNodeID("length"))
    assert unitNode is not None, "the Units logic makes the length unit node"
    assert measurement.GetUnits() == unitNode.GetSuffix() == sceneLengthUnit()


# ---- tables and images ----------------------------------------------------------------------------

def test_integer_columns_beyond_32_bits_and_booleans(scene):
    import pandas as pd
    import slicer

    from NACResponseSlicerLib.mrml_tables import tableNodeFromDataFrame

    frame = pd.DataFrame({"accession": [2**31, 2**40 + 3], "n": [1, 2], "kept": [True, False]})
    table = tableNodeFromDataFrame(frame, "big")
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "accession"), [2**31, 2**40 + 3])
    assert table.GetTable().GetColumnByName("n").GetDataTypeAsString() == "int"
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "kept"), [1, 0])


def test_a_2d_rgb_image_is_one_slice_of_a_vector_volume(scene):
    import SimpleITK as sitk

    from NACResponseSlicerLib.volumes import imageFromVolume, volumeFromImage

    rgb = np.random.default_rng(0).integers(0, 255, (7, 9, 3)).astype(np.uint8)
    image = sitk.GetImageFromArray(rgb, isVector=True)
    image.SetSpacing((0.1, 0.2))
    node = volumeFromImage(image, "ultrasound")
    assert node.IsA("vtkMRMLVectorVolumeNode")
    assert node.GetImageData().GetDimensions() == (9, 7, 1)
    assert node.GetImageData().GetNumberOfScalarComponents() == 3
    back = imageFromVolume(node, dimension=2)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), rgb)
    np.testing.assert_allclose(back.GetSpacing(), (0.1, 0.2))


# ---- FTV box ---------------------------------------------------------------------------------------

def test_roi_corners_include_rotation_and_parent_transform(scene):
    import slicer
    import vtk

    from NACResponseSlicerLib.segmentation_logic import roiCornersRAS

    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "box")
    roi.SetCenter(10.0, 0.0, 0.0)
    roi.SetSize(4.0, 2.0, 6.0)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "rotate")
    matrix = vtk.vtkMatrix4x4()
    angle = np.deg2rad(30)
    for (i, j), v in {(0, 0): np.cos(angle), (0, 1): -np.sin(angle), (1, 0): np.sin(angle), (1, 1): np.cos(angle),
                      (2, 3): 5.0}.items():
        matrix.SetElement(i, j, v)
    transform.SetMatrixTransformToParent(matrix)
    roi.SetAndObserveTransformNodeID(transform.GetID())
    corners = roiCornersRAS(roi)
    local = np.array([[10 + x, y, z, 1.0] for x in (-2, 2) for y in (-1, 1) for z in (-3, 3)])
    expected = (local @ slicer.util.arrayFromVTKMatrix(matrix).T)[:, :3]
    assert len(corners) == 8
    np.testing.assert_allclose(sorted(map(tuple, corners)), sorted(map(tuple, expected)), atol=1e-9)


def test_ftv_box_from_all_corners_of_an_oblique_image():
    """Two opposite corners give a wrong box on a rotated grid; all eight give the enclosing one."""
    import SimpleITK as sitk

    from NACResponseLib.segmentation.ftv import box_from_mm

    image = sitk.Image(40, 40, 10, sitk.sitkInt16)
    angle = np.deg2rad(45)
    image.SetDirection((np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1))
    corners = [(x, y, z) for x in (5.0, 15.0) for y in (5.0, 15.0) for z in (2.0, 6.0)]
    index = np.array([image.TransformPhysicalPointToContinuousIndex(c) for c in corners])
    box = box_from_mm(image, *corners)
    assert box[:3] == tuple(int(v) for v in np.clip(np.floor(index.min(0) + 0.5), 0, None))
    two = box_from_mm(image, corners[0], corners[-1])
    assert (two[3] - two[0]) * (two[4] - two[1]) < (box[3] - box[0]) * (box[4] - box[1])


# ---- panels on real MRML ----------------------------------------------------------------------------

@pytest.fixture
def study_logic(scene, copy_study):
    from NACResponseSlicerLib.panels import PanelLogic

    logic = PanelLogic()
    logic.study.openStudy(copy_study.root)
    return logic


def test_a_session_with_tokens_opens_only_with_the_readers_token_and_then_saves(study_logic, copy_study):
    import slicer

    from NACResponseLib.errors import InputError
    from NACResponseLib.readers.sessions import ReaderSession, create_session

    token = create_session(copy_study, "t", ["S1"], timepoints=["pre"], seed=1, tokens=True).issued_tokens["S1"]
    session = study_logic.session
    for wrong in (None, "", token + "x"):
        with pytest.raises(InputError, match="token"):
            session.openReaderSession("t", "S1", wrong)
    session.openReaderSession("t", "S1", token)
    reference, node, case = session.loadNextSessionCase("S1")
    array = np.zeros(slicer.util.arrayFromVolume(reference).shape, np.uint8)
    array[2:4, 10:14, 10:14] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(array, node, node.GetSegmentation().GetNthSegmentID(0), reference)
    session.saveSessionSegmentation("S1", case, node)
    assert [v["source"] for v in ReaderSession(copy_study, "t").versions("S1", case)] == ["session"]


def test_unsaved_reader_edits_are_seen_and_kept_as_a_draft(study_logic, copy_study):
    import slicer

    from NACResponseLib.readers.sessions import ReaderSession, create_session

    create_session(copy_study, "s", ["S1"], timepoints=["pre"], seed=1)
    session = study_logic.session
    session.openReaderSession("s", "S1")
    reference, node, case = session.loadNextSessionCase("S1")
    assert not session.hasUnsavedEdits(case, node)
    array = np.zeros(slicer.util.arrayFromVolume(reference).shape, np.uint8)
    array[2:4, 10:14, 10:14] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(array, node, node.GetSegmentation().GetNthSegmentID(0), reference)
    assert session.hasUnsavedEdits(case, node)

    from NACResponseSlicerLib.session_panel import SessionPanel

    params = type("P", (), {"readerId": "S1", "sessionCase": case, "segmentationNode": node, "sessionName": "s"})()
    panel = SessionPanel(Recorder(), session, FakeTasks(), lambda: params)
    asked = []
    slicer.util.confirmYesNoDisplay = lambda text, **kw: asked.append(text) or True
    try:
        panel.onNextCase()  # keeps the edit as a draft, then resumes the (still open) case with it
    finally:
        del slicer.util.confirmYesNoDisplay
    assert asked and "unsaved edits" in asked[0]
    versions = ReaderSession(copy_study, "s").versions("S1", case)
    assert [v["source"] for v in versions] == ["draft"]
    assert ReaderSession(copy_study, "s").status()["S1"]["done"] == 0  # a draft does not finish the case
    _, resumed, _ = session.loadNextSessionCase("S1")
    assert slicer.util.arrayFromSegmentBinaryLabelmap(resumed, resumed.GetSegmentation().GetNthSegmentID(0),
                                                       reference).sum() == array.sum()


def test_exit_deactivates_the_segment_editor_effect_like_slicers_segment_editor(study_logic):
    from NACResponseSlicerLib.session_panel import SessionPanel

    ui = Recorder()
    SessionPanel(ui, study_logic.session, FakeTasks(), lambda: None).exit()
    names = [entry[0].rsplit(".", 1)[1] for entry in ui._log]
    assert names == ["setActiveEffect", "uninstallKeyboardShortcuts", "removeViewObservations"]
    assert ui._log[0][1] == (None,)


def test_results_open_in_the_editor_segmentation_before_source_volume(study_logic):
    """FTV (and MONAI) results go to the embedded Segment Editor; the study panel no longer sets a
    source volume before a segmentation exists."""
    from NACResponseSlicerLib.segmentation_panel import SegmentationPanel
    from NACResponseSlicerLib.session_panel import SessionPanel
    from NACResponseSlicerLib.study_panel import StudyPanel

    patient = study_logic.study.patientIds()[0]
    settings = type("S", (), {"peThreshold": 70.0, "serThreshold": 0.0, "backgroundPercent": 30.0})()
    params = type("P", (), {"patientId": patient, "timepointA": "pre", "timepointB": "post", "roiNode": None,
                            "imageKey": "dce_early", "settings": settings, "segmentationNode": None})()
    ui, tasks = Recorder(), FakeTasks()
    StudyPanel(ui, study_logic.study, tasks, lambda: params).onLoadTimepoints()
    assert ui.calls("setSourceVolumeNode") == []
    session = SessionPanel(ui, study_logic.session, tasks, lambda: params)
    SegmentationPanel(ui, study_logic.segmentation, tasks, lambda: params, edit=session.edit).onRunFtv()
    editorCalls = [e[0].rsplit(".", 1)[1] for e in ui._log if ".segmentEditorWidget." in e[0]]
    assert editorCalls == ["setSegmentationNode", "setSourceVolumeNode"]
    assert ui.calls("setSegmentationNode")[0][1][0] is params.segmentationNode
    assert params.segmentationNode.GetSegmentation().GetNumberOfSegments() == 1
    assert tasks.ensured == [("core",)]


def test_buttons_ask_only_for_the_dependency_groups_they_need(study_logic):
    from NACResponseSlicerLib.features_panel import FeaturesPanel

    settings = type("S", (), {"jobs": 1, "iccThreshold": 0.8})()
    params = type("P", (), {"patientId": study_logic.study.patientIds()[0], "settings": settings, "sessionName": "",
                            "deepWeightsFile": "", "segModelFolder": ""})()
    tasks = FakeTasks()
    panel = FeaturesPanel(Recorder(), study_logic.features, tasks, lambda: params)
    panel.onRadiomicsCase()
    panel.onAgreement()
    panel.onIcc()
    assert [needs for _, needs in tasks.started] == [("core", "radiomics"), ("core",), ("core",)]
    with pytest.raises(ValueError, match="ResNet-50 weights or a segmentation model"):
        panel.onDeepFeatures()  # unset paths are empty strings, not "."


def test_case_report_button_runs_the_report_command_in_the_background(study_logic):
    from NACResponseSlicerLib.prediction_panel import PredictionPanel

    store = study_logic.context.requireStore()
    patient = study_logic.study.patientIds()[0]
    page = store.root / "reports" / "cases" / f"{patient}.html"
    for modelFile, extra in (("", []), ("/data/model", ["--model", "/data/model"])):
        params = type("P", (), {"patientId": patient, "modelFile": modelFile})()
        tasks = FakeTasks()
        PredictionPanel(Recorder(), study_logic.prediction, tasks, lambda p=params: p).onCaseReport()
        assert tasks.started == [(["report", "case", str(store.root), "--patient", patient, *extra, "--out", str(page)],
                                  ("core", "stats"))]


def test_a_group_that_cannot_install_never_blocks_the_others(tmp_path, slicer_app, monkeypatch):
    from NACResponseSlicerLib import installer

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# [core]\nnumpy>=1\n# [radiomics]\nno-such-package-nacresponse>=1\n"
                            "# [deep]\ntorch>=2.2\n")
    monkeypatch.setattr(installer, "pytorchExtensionAvailable", lambda: False)
    assert installer.ensureDependencies(str(requirements), ["core"]) is True
    assert installer.ensureDependencies(str(requirements), ["core", "radiomics"]) is False  # testing mode
    assert installer.currentPlan(str(requirements), ["core"]).empty
    plan = installer.currentPlan(str(requirements), ["deep"])
    if plan.torch:  # torch missing here: it is never pip-installed, the PyTorch extension is asked for
        with pytest.raises(RuntimeError, match="PyTorch extension"):
            installer.ensureDependencies(str(requirements), ["deep"])


def test_slicer_packaging_is_detected_by_import(slicer_app, monkeypatch):
    import types

    import slicer

    from NACResponseSlicerLib import installer

    monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
    assert installer.packagingModule() is None  # slicer-core has no slicer.packaging, whatever its version
    fake = types.ModuleType("slicer.packaging")
    fake.pip_check = lambda requirement: True
    monkeypatch.setitem(sys.modules, "slicer.packaging", fake)
    monkeypatch.setattr(slicer, "packaging", fake, raising=False)
    assert installer.packagingModule() is fake


def test_top_features_table_stays_visible_with_gradcam(scene):
    import pandas as pd
    import slicer

    from NACResponseSlicerLib.mrml_tables import showTable, tableNodeFromDataFrame
    from NACResponseSlicerLib.study_view import SIDE_BY_SIDE_TABLE_LAYOUT, layoutNode, showSideBySide

    showSideBySide(None, None, withTable=True)  # Grad-CAM maps over the two timepoints
    table = tableNodeFromDataFrame(pd.DataFrame({"feature": ["a"], "contribution": [0.1]}), "top features")
    showTable(table)
    assert layoutNode().GetViewArrangement() == SIDE_BY_SIDE_TABLE_LAYOUT
    assert slicer.app.applicationLogic().GetSelectionNode().GetActiveTableID() == table.GetID()
    showSideBySide(None, None)
    showTable(table)
    assert layoutNode().GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView


def test_dicom_import_stages_only_the_selected_series_and_removes_the_folder(tmp_path, slicer_app):
    from NACResponseSlicerLib.study_logic import StudyLogic

    files = {}
    for series in ("1.2.1", "1.2.2"):
        files[series] = []
        for i in range(2):
            path = tmp_path / series / f"IM{i}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"DICM")
            files[series].append(str(path))

    class Database:
        isOpen = True

        def filesForSeries(self, series):
            return files[series]

        def patients(self):  # what the old whole-database staging walked
            raise AssertionError("the whole database must not be staged")

    staging = StudyLogic.stageDicomSeries(["1.2.2"], Database())
    staged = sorted(p.name for p in Path(staging).iterdir())
    assert staged == ["000000_IM0.dcm", "000001_IM1.dcm"]
    assert all(Path(staging, name).read_bytes() == b"DICM" for name in staged)
    StudyLogic.removeStaging(staging)
    assert not Path(staging).exists()
    assert all(Path(f).is_file() for series in files.values() for f in series)  # the database keeps its files
    with pytest.raises(ValueError, match="Select the series"):
        StudyLogic.stageDicomSeries([], Database())


def test_reload_imports_fresh_code(slicer_app):
    import importlib

    from NACResponseSlicerLib import naming, reloading

    names = reloading.reloadPackages(["NACResponseSlicerLib"])
    assert "NACResponseSlicerLib.naming" in names
    fresh = importlib.import_module("NACResponseSlicerLib.naming")
    assert fresh is not naming and fresh.TIMEPOINTS == naming.TIMEPOINTS


def test_install_all_reports_each_group_and_goes_on(tmp_path, slicer_app, monkeypatch):
    from NACResponseSlicerLib import installer
    from NACResponseSlicerLib.panel_base import TaskPanel

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# [core]\nnumpy>=1\n# [deep]\ntorch>=99\n# [radiomics]\nno-such-package-nacresponse>=1\n")
    monkeypatch.setattr(installer, "pytorchExtensionAvailable", lambda: False)
    ui = Recorder()
    TaskPanel(ui, str(requirements)).onInstallDependencies()
    assert ui.calls("taskLabel.text")[-1][2] == "Python packages missing for: deep, radiomics."


def test_a_dlr_bundle_predicts_and_shows_its_gradcam_over_ultrasound(study_logic, copy_study, tmp_path):
    """The Prediction logic takes a DLR bundle: score, class per operating point, and each timepoint's
    Grad-CAM over the bundle's own image (us_bmode at pre and c2, not the panel's MR timepoints)."""
    pytest.importorskip("torch", reason="torch is not installed (Python 3.12 here: no CPU wheel, the deep extra is left out)")
    from NACResponseLib.deep.dlr import DLRNetConfig, build_network, save_dlr_bundle
    from NACResponseLib.deep.dlr_cohort import DLRInputSettings

    net = build_network(DLRNetConfig(widths=(4, 8, 16, 32), hidden=8, max_pool=False))
    spec = {**DLRInputSettings(size=32).to_dict(), "reader": "GT_US", "step": "c2", "target": "miller_payne"}
    bundle = save_dlr_bundle(tmp_path / "dlr", net, name="DLR-2", input_spec=spec,
                             operating_points={"dlr": {"threshold": 0.5, "weight": 0.8}},
                             training={}, provenance={"step": "test"})
    prediction = study_logic.prediction.predictCase(str(bundle), "P001")
    assert "error" not in prediction and 0 < prediction["probability"] < 1
    overlays = study_logic.prediction.showGradcam("P001", ["pre", "post"])
    assert len(overlays) == 2
    for overlay, timepoint in zip(overlays, ("pre", "c2")):
        assert timepoint in overlay.GetName()
        assert overlay.GetImageData().GetDimensions()[2] == 1  # on the 2D ultrasound grid
    text = study_logic.prediction.showPrediction(prediction, "P001")
    assert "dlr: " in text
