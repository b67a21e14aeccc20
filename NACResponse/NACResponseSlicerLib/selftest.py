"""In-Slicer self-test of every panel's logic, without GUI interaction (``NACResponseTest``).

Each function takes the running ``unittest.TestCase``.  ``runAll`` runs every one on a cleared scene
and reports each result: a failing test fails alone, the others still run.  A small synthetic study
is generated once per run into a temporary folder (no network) and deleted at the end, so a second
*Reload and Test* starts clean.  In testing mode nothing is installed, so tests that need a core
dependency missing from Slicer's Python skip with the reason.  CI runs the same functions on real
MRML (Testing/test_slicer_mrml.py).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import traceback
import unittest
from dataclasses import dataclass

import numpy as np
import slicer

TESTS = [
    "test_geometry_round_trip",
    "test_segmentation_export_on_reference",
    "test_tables_and_plots",
    "test_markups",
    "test_installer_in_testing_mode",
    "test_study_panel",
    "test_reader_session",
    "test_ftv_and_recist",
    "test_background_runner",
    "test_prediction_panel",
    "test_mc_panel",
]

_study = {}  # this run's synthetic study; emptied by runAll


@dataclass(frozen=True)
class Result:
    name: str
    status: str  # "passed", "skipped" or "failed"
    detail: str = ""


def runAll(t, names=None, report=None) -> list[Result]:
    """Run the self-tests (all, or ``names``) on a cleared scene each; every result is kept."""
    results = []
    _study.clear()
    try:
        for name in names or TESTS:
            slicer.mrmlScene.Clear()
            if report is not None:
                report(f"NACResponse: {name}")
            try:
                globals()[name](t)
            except unittest.SkipTest as reason:
                results.append(Result(name, "skipped", str(reason)))
            except Exception as exc:  # noqa: BLE001 - a failing test must not hide the others
                logging.error(f"NACResponse self-test {name} failed:\n{traceback.format_exc()}")
                results.append(Result(name, "failed", f"{type(exc).__name__}: {exc}"))
            else:
                results.append(Result(name, "passed"))
    finally:
        root = _study.pop("root", None)
        _study.clear()
        if root:
            shutil.rmtree(root, ignore_errors=True)
    logging.info(summary(results))
    return results


def summary(results) -> str:
    counts = {status: sum(r.status == status for r in results) for status in ("passed", "skipped", "failed")}
    lines = [f"NACResponse self-test: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"]
    lines += [f"  {r.status}: {r.name}" + (f" ({r.detail})" if r.detail else "") for r in results
              if r.status != "passed"]
    return "\n".join(lines)


def _requireCore(t) -> None:
    missing = [m for m in ("pandas", "pyarrow", "yaml", "jsonschema", "scipy") if importlib.util.find_spec(m) is None]
    if missing:
        t.skipTest(f"core dependencies not installed in Slicer's Python: {missing}")


def _syntheticStudy(t):
    """A 2-patient synthetic study (both with mammograms), generated once per test run."""
    _requireCore(t)
    if "store" not in _study:
        from NACResponseLib.demo.synthetic import generate_cohort
        from NACResponseLib.study.importers import import_folder

        root = _study["root"] = tempfile.mkdtemp(prefix="nacresponse-selftest-")
        source = generate_cohort(os.path.join(root, "source"), n_patients=2, seed=3, mc_fraction=1.0)
        _study["store"] = import_folder(source, os.path.join(root, "study"))
    return _study["store"]


def _obliqueImage():
    import SimpleITK as sitk

    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((10.0, -20.0, 5.0))
    angle = np.deg2rad(20)
    image.SetDirection((np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0.0, 0.0, 1.0))
    return image


def test_geometry_round_trip(t) -> None:
    """SimpleITK (LPS) -> volume node (RAS) -> SimpleITK keeps voxels and geometry; a physical point
    maps to the same RAS position Slicer computes."""
    import SimpleITK as sitk

    from .volumes import imageFromVolume, volumeFromImage

    image = _obliqueImage()
    node = volumeFromImage(image, "geometry test")
    back = imageFromVolume(node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-9)
    lps = image.TransformIndexToPhysicalPoint((3, 2, 1))
    ras = [0.0, 0.0, 0.0, 1.0]
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    matrix.MultiplyPoint([3, 2, 1, 1], ras)
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-9)


def test_segmentation_export_on_reference(t) -> None:
    """A mask imported into a segmentation and exported on the reference volume is the same mask."""
    import SimpleITK as sitk

    from .segmentations import exportToLabelmapImage, importLabelmapImage, newSegmentationNode
    from .volumes import volumeFromImage

    image = _obliqueImage()
    reference = volumeFromImage(image, "reference")
    mask = np.zeros((4, 5, 6), np.uint8)
    mask[1:3, 1:4, 2:5] = 1
    maskImage = sitk.GetImageFromArray(mask)
    maskImage.CopyInformation(image)
    segmentationNode = newSegmentationNode("export test", reference)
    ids = importLabelmapImage(maskImage, segmentationNode, reference, "tumour")
    t.assertEqual(len(ids), 1)
    exported = exportToLabelmapImage(segmentationNode, reference, ids)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(exported) > 0, mask > 0)
    np.testing.assert_allclose(exported.GetOrigin(), image.GetOrigin(), atol=1e-6)


def test_tables_and_plots(t) -> None:
    if importlib.util.find_spec("pandas") is None:
        t.skipTest("pandas not installed in Slicer's Python")
    import pandas as pd

    from .mrml_tables import plotChart, tableNodeFromDataFrame

    frame = pd.DataFrame({"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0], "name": ["a", None, "c"],
                          "kept": [True, False, True]})
    tableNode = tableNodeFromDataFrame(frame, "roc")
    t.assertEqual(tableNode.GetNumberOfColumns(), 4)
    t.assertEqual(tableNode.GetNumberOfRows(), 3)
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(tableNode, "tpr"), [0.0, 0.8, 1.0])
    t.assertEqual(tableNode.GetCellText(1, 2), "")
    chart = plotChart(tableNode, "fpr", ["tpr"], "ROC", "1 - specificity", "sensitivity", show=False)
    t.assertEqual(chart.GetNumberOfPlotSeriesNodes(), 1)


def test_markups(t) -> None:
    """Point lists round-trip; a line's length measurement follows the scene's length unit (Units)."""
    from .markups import lineLengthMm, lineWithLength, pointListFromRAS, rasFromPointList, sceneLengthUnit

    points = np.array([[1.0, 2.0, 3.0], [4.0, 6.0, 3.0]])
    pointList = pointListFromRAS(points, "points")
    np.testing.assert_allclose(rasFromPointList(pointList), points)
    line = lineWithLength(points[0], points[1], "extent")
    t.assertAlmostEqual(lineLengthMm(line), 5.0, places=6)
    measurement = line.GetMeasurement("length")
    t.assertAlmostEqual(measurement.GetValue(), 5.0, places=6)
    t.assertEqual(measurement.GetUnits(), sceneLengthUnit())


def test_installer_in_testing_mode(t) -> None:
    """In testing mode the installer reports what each group misses but never installs."""
    from .installer import currentPlan, ensureDependencies, installableGroups

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "requirements.txt")
    t.assertIn("core", installableGroups(path))
    for group in installableGroups(path):
        plan = currentPlan(path, [group])
        if plan.blocked:
            t.assertRaises(RuntimeError, ensureDependencies, path, [group])
        else:
            t.assertEqual(ensureDependencies(path, [group]), plan.empty)


def test_study_panel(t) -> None:
    from .naming import volume_name
    from .panels import PanelLogic

    store = _syntheticStudy(t)
    logic = PanelLogic()
    logic.study.openStudy(store.root)
    patient = logic.study.patientIds()[0]
    nodeA, nodeB = logic.study.loadTimepoints(patient, "pre", "post", "dce_early")
    t.assertEqual(nodeA.GetName(), volume_name(patient, "pre", "dce_early"))
    t.assertEqual(nodeB.GetName(), volume_name(patient, "post", "dce_early"))
    t.assertFalse(nodeA.GetDisplayNode().GetAutoWindowLevel())
    shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
    folder = shNode.GetItemParent(shNode.GetItemByDataNode(nodeA))
    t.assertEqual(shNode.GetItemName(folder), f"{patient} pre")
    again, _ = logic.study.loadTimepoints(patient, "pre", "post", "dce_early")
    t.assertIs(again, nodeA)  # loaded once


def test_reader_session(t) -> None:
    """A reader gets only their own work; Save stores a version under that reader."""
    from NACResponseLib.readers.sessions import create_session

    from .panels import PanelLogic
    from .session_logic import READER_ATTRIBUTE

    store = _syntheticStudy(t)
    create_session(store, "selftest", ["S1", "S2"], timepoints=["pre"], seed=1)
    logic = PanelLogic()
    logic.study.openStudy(store.root)
    other = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "someone else")
    other.SetAttribute(READER_ATTRIBUTE, "S2")
    logic.session.openReaderSession("selftest", "S1")
    t.assertIsNone(slicer.mrmlScene.GetNodeByID(other.GetID()))  # other reader's work removed
    reference, segmentationNode, caseId = logic.session.loadNextSessionCase("S1")
    segmentId = segmentationNode.GetSegmentation().GetNthSegmentID(0)
    array = np.zeros(slicer.util.arrayFromVolume(reference).shape, np.uint8)
    centre = tuple(s // 2 for s in array.shape)
    array[centre[0] - 2:centre[0] + 2, centre[1] - 3:centre[1] + 3, centre[2] - 3:centre[2] + 3] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(array, segmentationNode, segmentId, reference)
    path = logic.session.saveSessionSegmentation("S1", caseId, segmentationNode)
    t.assertTrue(os.path.isfile(str(path)))
    t.assertIn("S1", str(path))
    t.assertIn("1/", logic.session.sessionProgressText("S1"))


def test_ftv_and_recist(t) -> None:
    from .panels import PanelLogic

    store = _syntheticStudy(t)
    logic = PanelLogic()
    logic.study.openStudy(store.root)
    patient = logic.study.patientIds()[0]
    result = logic.segmentation.runFtv(patient, "pre", None, 70.0, 0.0, 30.0)
    t.assertGreater(result["volume_cm3"], 0.0)
    lines = logic.segmentation.showRecistLines(result["segmentationNode"])
    t.assertEqual(len(lines), 1)
    t.assertGreater(lines[0][1], 5.0)


def test_background_runner(t) -> None:
    """'nacresponse validate' runs in a separate process with JSON progress; the GUI thread polls it."""
    from .qt_runner import BackgroundTask

    store = _syntheticStudy(t)
    events = []
    task = BackgroundTask(["validate", str(store.root)], "validate", onProgress=events.append).start()
    result = task.waitForCompletion(300)
    t.assertIsNotNone(result)
    t.assertEqual(result.returncode, 0, "\n".join(result.log))
    t.assertTrue(events and events[-1].done == events[-1].total)


def _savedModelAndFeatures(store, folder):
    """A real saved logistic model of the core and a radiomics_wide table holding its features."""
    import pandas as pd

    from NACResponseLib.modelling.artefact import save_model
    from NACResponseLib.modelling.pipeline import ModelSpec, fit_model
    from NACResponseLib.modelling.selection import SelectionConfig

    rng = np.random.default_rng(0)
    columns = [f"pre__dce_early__original_firstorder_F{i}" for i in range(4)]
    X = pd.DataFrame(rng.normal(size=(30, 4)), columns=columns)
    y = (X.iloc[:, 0] > 0).astype(int).to_numpy()
    pipe = fit_model(ModelSpec("radiomics", "logistic", SelectionConfig(lasso=False, univariate_alpha=0.5)), X, y)
    save_model(folder, pipe, target="pcr", kind="radiomics", training_summary={"n": 30}, provenance={},
               operating_points={"early": {"threshold": 0.3}, "late": {"threshold": 0.7}}, X_train=X)
    patients = sorted(store.cohort.patients)
    wide = pd.DataFrame({"patient_id": patients, "reader": "R1", **{c: rng.normal(size=len(patients)) for c in columns}})
    store.write_table("radiomics_wide", wide, {"step": "NACResponse self-test"})


def test_prediction_panel(t) -> None:
    """Prediction, top-feature table, Grad-CAM overlay on its image, ROC and calibration charts, the
    case report."""
    import SimpleITK as sitk

    from NACResponseLib.modelling.calibration import decile_table
    from NACResponseLib.modelling.report import results_to_json

    from .panels import PanelLogic

    store = _syntheticStudy(t)
    if importlib.util.find_spec("sklearn") is None:
        t.skipTest("scikit-learn not installed in Slicer's Python")
    modelFolder = os.path.join(tempfile.mkdtemp(prefix="nacresponse-model-"), "model")
    _savedModelAndFeatures(store, modelFolder)
    logic = PanelLogic()
    logic.study.openStudy(store.root)
    patient = logic.study.patientIds()[0]
    prediction = logic.prediction.predictCase(modelFolder, patient)
    t.assertTrue(0.0 < prediction["probability"] < 1.0)
    t.assertEqual(set(prediction["classes"]), {"early", "late"})
    text = logic.prediction.showPrediction(prediction, patient)
    t.assertIn(f"P(pcr) = {prediction['probability']:.3f}", text)
    table = slicer.mrmlScene.GetFirstNodeByName(f"{patient} top features")
    t.assertEqual(table.GetNumberOfRows(), len(prediction["top_features"]))

    # Grad-CAM map written where 'features deep --gradcam' writes it, on the DCE grid
    dce = sitk.ReadImage(str(store.path(store.cohort[patient].timepoint("pre").image("dce_early").path)))
    heatArray = np.zeros(sitk.GetArrayFromImage(dce).shape, np.float32)
    centre = tuple(n // 2 for n in heatArray.shape)
    heatArray[centre[0] - 1:centre[0] + 2, centre[1] - 5:centre[1] + 5, centre[2] - 5:centre[2] + 5] = 1.0
    heat = sitk.GetImageFromArray(heatArray)
    heat.CopyInformation(dce)
    path = store.root / "deep" / "gradcam" / patient / "pre" / "R1__resnet50.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(heat, str(path))
    overlays = logic.prediction.showGradcam(patient, ["pre", "post"])
    t.assertEqual(len(overlays), 1)
    np.testing.assert_allclose(overlays[0].GetSpacing(), dce.GetSpacing(), atol=1e-6)
    t.assertEqual(overlays[0].GetDisplayNode().GetColorNodeID(), "vtkMRMLColorTableNodeRainbow")

    # evaluation.json in the format 'nacresponse model evaluate' writes
    rng = np.random.default_rng(1)
    yy = rng.integers(0, 2, 30)
    pp = np.clip(0.4 * yy + 0.6 * rng.random(30), 0, 1)
    evaluation = {"models": {"radiomics": {"y": yy.tolist(), "oof": pp.tolist(), "deciles": decile_table(yy, pp),
                                           "metrics": {"auc": {"estimate": 0.8, "ci_low": 0.6, "ci_high": 0.9}}}}}
    folder = store.reports_dir / "models" / "pcr"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evaluation.json").write_text(results_to_json(evaluation))
    shown = logic.prediction.showEvaluationPlots(modelFolder, show=False)
    t.assertEqual(shown["charts"]["ROC"].GetNumberOfPlotSeriesNodes(), 2)  # the model and the chance line
    t.assertEqual(shown["charts"]["calibration"].GetNumberOfPlotSeriesNodes(), 2)
    rocTable = slicer.mrmlScene.GetFirstNodeByName("pcr ROC radiomics")
    t.assertEqual(slicer.util.arrayFromTableColumn(rocTable, "tpr")[-1], 1.0)
    t.assertIn("radiomics AUC 0.800", shown["text"])

    # the case report: the panel's command in the background runner; the page shows this prediction
    arguments, page = logic.prediction.caseReportJob(patient, modelFolder)
    _runCli(t, arguments)
    text = page.read_text(encoding="utf-8")
    for wanted in (f"Case report: patient {patient}", f"<td>{prediction['probability']:.3f}</td>", "Grad-CAM resnet50"):
        t.assertTrue(wanted in text, f"{wanted!r} is not on the case report page {page}")


def _runCli(t, arguments) -> None:
    from .qt_runner import BackgroundTask

    result = BackgroundTask(arguments, arguments[0]).start().waitForCompletion(300)
    t.assertIsNotNone(result)
    t.assertEqual(result.returncode, 0, "\n".join(result.log))


def test_mc_panel(t) -> None:
    """Detect + extent (real commands), editable points, extents in cm, saved edits, RESMIN comparison."""
    import json

    from .markups import lineLengthMm
    from .mc_logic import mcExtentLineName, mcPointListName
    from .panels import PanelLogic

    store = _syntheticStudy(t)
    logic = PanelLogic()
    logic.study.openStudy(store.root)
    patient = logic.study.patientIds()[0]
    image = [k for k in logic.study.imageKeys(patient) if k.startswith("mg_cc")][0]
    _runCli(t, logic.mc.mcDetectArguments(["pre", "post"]))
    _runCli(t, logic.mc.mcExtentArguments())
    text = logic.mc.showMcResults(patient, image, ["pre", "post"])
    t.assertIn("extent", text)
    mcs = store.read_table("mc_mcs")
    rows = mcs[(mcs.patient_id == patient) & (mcs.timepoint == "pre") & (mcs.image == image) & mcs.kept.astype(bool)]
    pointList = slicer.mrmlScene.GetFirstNodeByName(mcPointListName(patient, "pre", image))
    t.assertEqual(pointList.GetNumberOfControlPoints(), len(rows))
    clusters = store.read_table("mc_clusters")
    largest = clusters[(clusters.patient_id == patient) & (clusters.timepoint == "pre")
                       & (clusters.image == image)]["extent_mm"].max()
    line = slicer.mrmlScene.GetFirstNodeByName(mcExtentLineName(patient, "pre", image))
    t.assertAlmostEqual(lineLengthMm(line), largest, places=3)  # scene geometry agrees with the core's mm
    t.assertIn(f"extent {largest / 10:.2f} cm", text)
    for timepoint, view in (("pre", "Red"), ("post", "Yellow")):  # one plane: each timepoint in its own view
        node = slicer.mrmlScene.GetFirstNodeByName(mcPointListName(patient, timepoint, image))
        t.assertEqual(node.GetDisplayNode().GetViewNodeIDs(), (f"vtkMRMLSliceNode{view}",))

    # the user deletes one MC at pre; the edit is stored in the core's format and re-applied by 'mc extent'
    pointList.RemoveNthControlPoint(0)
    paths = logic.mc.saveMcEdits(patient, image, ["pre", "post"], actor="S1")
    edits = json.loads(paths[0].read_text())
    t.assertEqual((len(edits["remove"]), len(edits["add"])), (1, 0))
    _runCli(t, logic.mc.mcExtentArguments())
    logic.mc.showMcResults(patient, image, ["pre", "post"])
    t.assertEqual(slicer.mrmlScene.GetFirstNodeByName(mcPointListName(patient, "pre", image))
                  .GetNumberOfControlPoints(), len(rows) - 1)
    _runCli(t, logic.mc.mcCompareArguments("pre", "post"))
    comparison = logic.mc.mcComparisonText(patient, image)
    t.assertIn("RESMIN flag", comparison)
