"""Prediction panel logic: a saved model (``nacresponse model train``) predicts the current patient
in-process (``NACResponseLib.modelling.cohort.predict_study``: probability, class per operating
point, top contributing features); Grad-CAM maps of ``features deep --gradcam`` as overlays; cohort
ROC and calibration from ``reports/models/<target>/evaluation.json`` as plot charts; the case report
command and the page it writes (``case_report.case_report_job``)."""

from __future__ import annotations

import pathlib

import slicer

from .context import given_path
from .naming import volume_name

GRADCAM_OPACITY = 0.4
GRADCAM_COLOR_NODE_ID = "vtkMRMLColorTableNodeRainbow"  # a built-in table of vtkMRMLColorLogic


def _modelFolder(modelFile) -> pathlib.Path:
    folder = given_path(modelFile)
    if folder is None or not (folder / "model.json").is_file():
        raise ValueError("Choose a saved model folder (with model.json, made by 'nacresponse model train').")
    return folder


class PredictionLogic:
    def __init__(self, context) -> None:
        self.context = context
        self._dlr = None  # (bundle folder, prediction) of the last DLR bundle's prediction

    def caseReportJob(self, patientId: str, modelFile=None, pdf: bool = False):
        """(``nacresponse report case`` arguments, the page they write) for the current study, with
        the chosen model folder when it is outside the study's models/."""
        from .case_report import case_report_job

        folder = given_path(modelFile)
        return case_report_job(self.context.requireStore(), patientId, [folder] if folder else [], pdf=pdf)

    def predictCase(self, modelFile, patientId: str, reader: str | None = None) -> dict:
        """The core's prediction of one patient from the study's feature tables, or from a DLR
        bundle (``model dlr train``) on the patient's images (or its error)."""
        from NACResponseLib.modelling.cohort import predict_study

        from .prediction_dlr import dlr_prediction, is_dlr_bundle

        folder = given_path(modelFile)
        self._dlr = None
        if folder is not None and is_dlr_bundle(folder):
            self._dlr = (folder, dlr_prediction(self.context.requireStore(), folder, patientId))
            return self._dlr[1]
        return predict_study(self.context.requireStore(), _modelFolder(modelFile), [patientId], reader=reader or None)[0]

    def showPrediction(self, prediction: dict, patientId: str) -> str:
        """The summary text; the top contributing features become a table node (shown)."""
        from .mrml_tables import namedNode, showTable, tableNodeFromDataFrame
        from .prediction_text import prediction_summary, top_features_frame

        top = top_features_frame(prediction)
        if top is not None and len(top):
            title = f"{patientId} top features"
            showTable(tableNodeFromDataFrame(top, title, namedNode("vtkMRMLTableNode", title)))
        return prediction_summary(prediction)

    def gradcamFiles(self, patientId: str, timepoints) -> dict:
        """``{timepoint: [Grad-CAM map files]}`` written by ``features deep --gradcam``."""
        root = self.context.requireStore().root / "deep" / "gradcam" / patientId
        out = {}
        for timepoint in timepoints:
            files = sorted((root / timepoint).glob("*.nii.gz")) if (root / timepoint).is_dir() else []
            if files:
                out[timepoint] = files
        return out

    def showGradcam(self, patientId: str, timepoints) -> list:
        """Each timepoint's first Grad-CAM map over its DCE-early image (the map shares its grid); after
        a DLR prediction, its maps over the bundle's own timepoints and image (e.g. ``us_bmode``)."""
        from .mrml_tables import namedNode
        from .study_view import (
            SIDE_BY_SIDE_VIEWS,
            loadTimepointImage,
            placeInFolder,
            showOverlay,
            showSideBySide,
        )
        from .volumes import loadImageFile

        store = self.context.requireStore()
        found, backgroundKeys = self.gradcamFiles(patientId, timepoints), {}
        if self._dlr is not None and self._dlr[1].get("patient_id") == patientId:
            from .prediction_dlr import dlr_overlays  # a DLR's maps: its own timepoints and image

            entries = dlr_overlays(store, self._dlr[0], self._dlr[1])
            timepoints = [e["timepoint"] for e in entries]
            found = {e["timepoint"]: [pathlib.Path(e["gradcam"])] for e in entries}
            backgroundKeys = {e["timepoint"]: e["background"] for e in entries}
        backgrounds, overlays = [], []
        for timepoint in timepoints:
            if timepoint not in found:
                backgrounds.append(None)
                overlays.append(None)
                continue
            path = found[timepoint][0]
            name = f"{volume_name(patientId, timepoint, 'gradcam')} {path.name.split('__')[0]}"
            overlay = namedNode("vtkMRMLScalarVolumeNode", name) or loadImageFile(str(path), name)
            overlay.GetDisplayNode().SetAndObserveColorNodeID(GRADCAM_COLOR_NODE_ID)
            placeInFolder(overlay, patientId, timepoint)
            backgrounds.append(loadTimepointImage(store, patientId, timepoint,
                                                  backgroundKeys.get(timepoint, "dce_early")))
            overlays.append(overlay)
        if any(overlays):
            showSideBySide(*backgrounds[:2], withTable=True)  # the top-features table stays in view
            for viewName, overlay in zip(SIDE_BY_SIDE_VIEWS, overlays):
                showOverlay(viewName, overlay, GRADCAM_OPACITY)
        return [o for o in overlays if o is not None]

    def evaluationFile(self, modelFile=None):
        """The evaluation of the chosen model's target, else the first one of the study, else None."""
        from .evaluation_curves import find_evaluations

        found = find_evaluations(self.context.requireStore().reports_dir)
        if given_path(modelFile) is not None:
            from NACResponseLib.modelling.artefact import load_model

            target = load_model(_modelFolder(modelFile)).meta.get("target")
            if target in found:
                return found[target]
        return next(iter(found.values()), None)

    def showEvaluationPlots(self, modelFile=None, show: bool = True) -> dict:
        """ROC (one curve per model, with the chance line) and calibration (with the ideal line) charts."""
        import pandas as pd

        from .evaluation_curves import auc_text, calibration_frames, load_evaluation, roc_frames
        from .mrml_tables import namedNode, plotSeriesChart, tableNodeFromDataFrame

        path = self.evaluationFile(modelFile)
        if path is None:
            raise ValueError("No evaluation results in this study yet (run 'nacresponse model evaluate').")
        evaluation = load_evaluation(path)
        target = path.parent.name
        diagonal = pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]})

        def table(frame, name):
            return tableNodeFromDataFrame(frame, name, namedNode("vtkMRMLTableNode", name))

        charts = {}
        for kind, frames, x, y, reference, xTitle, yTitle in (
                ("ROC", roc_frames(evaluation), "fpr", "tpr", "chance", "1 - specificity", "sensitivity"),
                ("calibration", calibration_frames(evaluation), "mean_predicted", "observed", "ideal",
                 "mean predicted probability", "observed proportion")):
            title = f"{target} {kind}"
            series = [(table(frame, f"{title} {model}"), x, y, model) for model, frame in frames.items()]
            series.append((table(diagonal, f"{title} {reference}"), "x", "y", reference))
            charts[kind] = plotSeriesChart(series, title, xTitle, yTitle, lineOnly=kind == "ROC", show=False)
        if show:
            slicer.modules.plots.logic().ShowChartInLayout(charts["ROC"])
        return {"charts": charts, "text": f"{target}: {auc_text(evaluation)} (calibration chart: "
                                          f"'{target} calibration' in the plot view's chart list)."}
