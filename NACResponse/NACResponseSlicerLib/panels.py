"""What each panel does, without widgets: the module's Logic mixes this in (``NACResponseLogic``).

Quick steps (opening a study, a reader-session case, FTV, RECIST lines, reading tables) call
NACResponseLib in-process; long ones (radiomics, deep features, MONAI inference, model prediction,
MC detection, agreement, ICC) run as ``nacresponse`` commands in a background process.
NACResponseLib is imported inside methods so the module loads before its dependencies are installed.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import slicer

from . import cli_calls
from .naming import segmentation_name, volume_name

READER_ATTRIBUTE = "NACResponse.reader"
SESSION_ATTRIBUTE = "NACResponse.sessionCase"


class PanelLogic:
    store = None
    session = None

    # ---- set-up and background work ----------------------------------------------------------
    def ensureDependencies(self, requirementsPath: str) -> bool:
        from .installer import ensureDependencies

        return ensureDependencies(requirementsPath)

    def runInBackground(self, arguments, title, onProgress=None, onLog=None, onFinished=None):
        from .qt_runner import BackgroundTask

        return BackgroundTask(arguments, title, onProgress=onProgress, onLog=onLog, onFinished=onFinished).start()

    # ---- Study -------------------------------------------------------------------------------
    def openStudy(self, folder):
        from NACResponseLib.store import StudyStore

        if not folder or str(folder) in ("", "."):
            raise ValueError("Choose a study folder (made by 'nacresponse import').")
        self.store = StudyStore(pathlib.Path(folder))
        self.session = None
        return self.store

    def _requireStore(self):
        if self.store is None:
            raise ValueError("Open a study folder first.")
        return self.store

    def patientIds(self) -> list[str]:
        return sorted(self._requireStore().cohort.patients)

    def imageKeys(self, patientId: str) -> list[str]:
        patient = self._requireStore().cohort[patientId]
        return sorted({image.key for tp in patient.timepoints.values() for image in tp.images})

    def studySummary(self) -> str:
        cohort = self._requireStore().cohort
        return (f"{len(cohort)} patients; timepoints {', '.join(cohort.timepoint_names())}; "
                f"readers {', '.join(cohort.readers()) or 'none'}.")

    def resultTables(self) -> list[str]:
        store = self._requireStore()
        if not store.tables_dir.is_dir():
            return []
        return sorted(p.name[: -len(".parquet")] for p in store.tables_dir.glob("*.parquet"))

    def loadTimepoints(self, patientId: str, timepointA: str, timepointB: str, imageKey: str):
        from .study_view import loadTimepointImage, showSideBySide

        store = self._requireStore()
        patient = store.cohort[patientId]
        nodes = []
        for timepoint in (timepointA, timepointB):
            if timepoint in patient.timepoints and patient.timepoints[timepoint].has_image(imageKey):
                nodes.append(loadTimepointImage(store, patientId, timepoint, imageKey))
            else:
                nodes.append(None)
        if nodes == [None, None]:
            raise ValueError(f"{patientId} has no {imageKey} image at {timepointA} or {timepointB}")
        showSideBySide(*nodes)
        return nodes[0], nodes[1]

    def stageDicomDatabase(self) -> str:
        """Link (or copy) every file of Slicer's DICOM database into a temporary folder for 'import --dicom'."""
        from .staging import stage_files

        database = slicer.dicomDatabase
        if database is None or not database.isOpen:
            raise ValueError("Slicer's DICOM database is not open (use the DICOM module to import data first).")
        files = [f for patient in database.patients() for study in database.studiesForPatient(patient)
                 for series in database.seriesForStudy(study) for f in database.filesForSeries(series)]
        if not files:
            raise ValueError("Slicer's DICOM database is empty.")
        return stage_files(files, tempfile.mkdtemp(prefix="nacresponse-dicom-"))

    # ---- Reader session ----------------------------------------------------------------------
    def openReaderSession(self, sessionName: str, readerId: str):
        from NACResponseLib.sessions import ReaderSession

        if not sessionName or not readerId:
            raise ValueError("Enter the session name and your reader id.")
        session = ReaderSession(self._requireStore(), sessionName)
        if readerId not in session.spec.readers:
            raise ValueError(f"{readerId!r} is not a reader of session {sessionName!r} ({', '.join(session.spec.readers)})")
        self.session = session
        self.removeOtherReadersNodes(readerId)
        return session

    def removeOtherReadersNodes(self, readerId: str) -> int:
        """Blinding: remove every node another reader's session work created from the scene."""
        removed = 0
        for className in ("vtkMRMLSegmentationNode", "vtkMRMLScalarVolumeNode"):
            for node in slicer.util.getNodesByClass(className):
                owner = node.GetAttribute(READER_ATTRIBUTE)
                if owner and owner != readerId:
                    slicer.mrmlScene.RemoveNode(node)
                    removed += 1
        return removed

    def loadNextSessionCase(self, readerId: str):
        """Start this reader's next case; load its images and only this reader's own mask.

        Returns (reference volume, segmentation node, case id) or None when every case is done.
        """
        from .segmentations import loadMaskFile, newSegmentationNode
        from .study_view import placeInFolder, showSideBySide
        from .volumes import loadImageFile, setWindowLevelFromData

        if self.session is None:
            raise ValueError("Start the session first.")
        assignment = self.session.next_case(readerId)
        if assignment is None:
            return None
        assignment = self.session.start(readerId, assignment.case_id)
        self.clearSessionNodes()
        referenceVolume = None
        for key, path in sorted(assignment.images.items()):
            node = loadImageFile(str(path), volume_name(assignment.patient_id, assignment.timepoint, key))
            setWindowLevelFromData(node)
            node.SetAttribute(READER_ATTRIBUTE, readerId)
            node.SetAttribute(SESSION_ATTRIBUTE, assignment.case_id)
            placeInFolder(node, assignment.patient_id, assignment.timepoint)
            if key == assignment.reference:
                referenceVolume = node
        segmentationNode = newSegmentationNode(
            segmentation_name(assignment.patient_id, assignment.timepoint, readerId), referenceVolume)
        segmentationNode.SetAttribute(READER_ATTRIBUTE, readerId)
        segmentationNode.SetAttribute(SESSION_ATTRIBUTE, assignment.case_id)
        placeInFolder(segmentationNode, assignment.patient_id, assignment.timepoint)
        if assignment.own_segmentation is not None:  # resume: this reader's latest version
            from NACResponseLib.imageio import read_image

            loadMaskFile(str(assignment.own_segmentation), segmentationNode, referenceVolume,
                         read_image(str(assignment.images[assignment.reference])))
        else:
            segmentationNode.GetSegmentation().AddEmptySegment("tumour", "tumour", [0.9, 0.3, 0.2])
        showSideBySide(referenceVolume, referenceVolume)
        return referenceVolume, segmentationNode, assignment.case_id

    def clearSessionNodes(self) -> None:
        for className in ("vtkMRMLSegmentationNode", "vtkMRMLScalarVolumeNode"):
            for node in slicer.util.getNodesByClass(className):
                if node.GetAttribute(SESSION_ATTRIBUTE):
                    slicer.mrmlScene.RemoveNode(node)

    def saveSessionSegmentation(self, readerId: str, caseId: str, segmentationNode):
        from .segmentations import exportToLabelmapImage, segmentIdsOf

        if self.session is None or not caseId or segmentationNode is None:
            raise ValueError("Load a session case first.")
        if segmentationNode.GetAttribute(READER_ATTRIBUTE) != readerId:
            raise ValueError("This segmentation does not belong to the current reader.")
        referenceVolume = self._sessionReferenceVolume(caseId)
        mask = exportToLabelmapImage(segmentationNode, referenceVolume, segmentIdsOf(segmentationNode))
        return self.session.save(readerId, caseId, mask)

    def _sessionReferenceVolume(self, caseId: str):
        patientId, timepoint = caseId.split("/", 1)
        name = volume_name(patientId, timepoint, self.session.spec.reference)
        for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
            if node.GetName() == name and node.GetAttribute(SESSION_ATTRIBUTE) == caseId:
                return node
        raise ValueError(f"the reference image of {caseId} is no longer in the scene; load the case again")

    def sessionProgressText(self, readerId: str) -> str:
        if self.session is None:
            return ""
        status = self.session.status()[readerId]
        return f"{readerId}: {status['done']}/{status['total']} cases done."

    # ---- Automatic segmentation --------------------------------------------------------------
    def segPredictArguments(self, bundleFolder, patientId: str, timepoints):
        if not bundleFolder or str(bundleFolder) == "." or not (pathlib.Path(bundleFolder) / "configs").is_dir():
            raise ValueError("Choose a MONAI bundle folder (with configs/metadata.json and models/model.pt).")
        return cli_calls.seg_predict(self._requireStore().root, bundleFolder, [patientId], timepoints)

    def loadMethodSegmentations(self, patientId: str, timepoints, method: str):
        """Load the newest segmentations of one method (e.g. monai) as editable segments."""
        from .segmentations import loadMaskFile, newSegmentationNode
        from .study_view import loadTimepointImage, placeInFolder

        store = self._requireStore()
        store._cohort = None  # the background command added manifest rows
        patient = store.cohort[patientId]
        lastNode = None
        for timepoint in timepoints:
            if timepoint not in patient.timepoints:
                continue
            segmentations = patient.timepoints[timepoint].segmentations_by(method=method)
            if not segmentations:
                continue
            seg = sorted(segmentations, key=lambda s: s.created or "")[-1]
            referenceVolume = loadTimepointImage(store, patientId, timepoint, seg.reference)
            node = newSegmentationNode(segmentation_name(patientId, timepoint, seg.reader, method), referenceVolume)
            loadMaskFile(str(store.path(seg.path)), node, referenceVolume, segmentName=f"{method} tumour",
                         label=seg.label)
            placeInFolder(node, patientId, timepoint)
            lastNode = node
        return lastNode

    def runFtv(self, patientId: str, timepoint: str, roiNode, peThreshold: float, serThreshold: float,
               backgroundPercent: float) -> dict:
        """DCE functional tumour volume inside a markups ROI box; the mask becomes an editable segment."""
        from NACResponseLib.imageio import read_image
        from NACResponseLib.segmentation.ftv import FTVConfig, box_from_mm, functional_tumour_volume

        from .geometry_math import ras_from_lps
        from .segmentations import importLabelmapImage, newSegmentationNode
        from .study_view import loadTimepointImage, placeInFolder

        store = self._requireStore()
        tp = store.cohort[patientId].timepoint(timepoint)
        pre, early, late = (read_image(store.path(tp.image(k).path)) for k in ("dce_pre", "dce_early", "dce_late"))
        box = None
        if roiNode is not None:
            bounds = [0.0] * 6
            roiNode.GetBounds(bounds)  # RAS: xmin, xmax, ymin, ymax, zmin, zmax
            cornersLPS = ras_from_lps([[bounds[0], bounds[2], bounds[4]], [bounds[1], bounds[3], bounds[5]]])
            box = box_from_mm(pre, cornersLPS[0], cornersLPS[1])
        config = FTVConfig(pe_threshold=peThreshold, ser_threshold=serThreshold, background_percent=backgroundPercent)
        result = functional_tumour_volume(pre, early, late, box=box, config=config)
        referenceVolume = loadTimepointImage(store, patientId, timepoint, "dce_early")
        node = newSegmentationNode(segmentation_name(patientId, timepoint, "auto", "ftv"), referenceVolume)
        if result.n_voxels:
            importLabelmapImage(result.mask, node, referenceVolume, "FTV", (1.0, 0.6, 0.0))
        placeInFolder(node, patientId, timepoint)
        return {"segmentationNode": node, "volume_cm3": result.volume_cm3, "n_voxels": result.n_voxels,
                "ser_volumes_cm3": result.ser_volumes_cm3}

    def showRecistLines(self, segmentationNode) -> list[tuple[str, float]]:
        """Longest in-plane diameter of every segment as a markups line; returns (name, mm)."""
        from .geometry_math import ras_from_index
        from .markups import lineWithLength
        from .recist_lines import longest_inplane_segment
        from .segmentations import segmentIdsOf
        from .volumes import ijkToRASArray

        if segmentationNode is None:
            raise ValueError("Choose a segmentation.")
        referenceVolume = segmentationNode.GetNodeReference(
            slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole())
        if referenceVolume is None:
            raise ValueError(f"{segmentationNode.GetName()} has no reference volume")
        matrix = ijkToRASArray(referenceVolume)
        spacing = referenceVolume.GetSpacing()
        out = []
        for segmentId in segmentIdsOf(segmentationNode):
            array = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, referenceVolume)
            found = longest_inplane_segment(array, spacing)
            if found is None:
                continue
            length, start, end = found
            points = ras_from_index(matrix, [start, end])
            name = f"{segmentationNode.GetSegmentation().GetSegment(segmentId).GetName()} RECIST"
            lineWithLength(points[0], points[1], name)
            out.append((name, length))
        return out

    # ---- Features ----------------------------------------------------------------------------
    def radiomicsArguments(self, jobs: int, patients=None):
        return cli_calls.radiomics(self._requireStore().root, jobs, patients)

    def deepFeaturesArguments(self, weightsFile, bundleFolder):
        weights = weightsFile if weightsFile and str(weightsFile) != "." else None
        bundle = bundleFolder if bundleFolder and str(bundleFolder) != "." else None
        if weights is None and bundle is None:
            raise ValueError("Set ResNet-50 weights or a segmentation model bundle for deep features.")
        return cli_calls.deep_features(self._requireStore().root, weights, bundle)

    def agreementArguments(self, sessionName: str = ""):
        return cli_calls.agreement(self._requireStore().root, sessionName or None)

    def iccArguments(self, threshold: float, sessionName: str = ""):
        return cli_calls.icc(self._requireStore().root, threshold, session=sessionName or None)

    def showResultTable(self, name: str, patientId: str | None = None):
        """Show a study table; wide feature tables are shown for one patient, one row per feature."""
        from .mrml_tables import showTable, tableNodeFromDataFrame
        from .table_data import case_feature_rows

        if not name:
            raise ValueError("Choose a table.")
        frame = self._requireStore().read_table(name)
        title = name
        if patientId and "patient_id" in frame.columns and frame.shape[1] > 50:
            frame = case_feature_rows(frame, patientId)
            title = f"{name} {patientId}"
        tableNode = slicer.mrmlScene.GetFirstNodeByName(title)
        if tableNode is None or not tableNode.IsA("vtkMRMLTableNode"):
            tableNode = None
        tableNode = tableNodeFromDataFrame(frame, title, tableNode, maxRows=5000)
        showTable(tableNode)
        return tableNode

    # ---- Prediction --------------------------------------------------------------------------
    def predictArguments(self, modelFile, patientId: str):
        if not modelFile or str(modelFile) == "." or not pathlib.Path(modelFile).exists():
            raise ValueError("Choose a saved model (from 'nacresponse model train').")
        out = os.path.join(tempfile.mkdtemp(prefix="nacresponse-predict-"), "prediction.json")
        return cli_calls.model_predict(self._requireStore().root, modelFile, patientId, out), out

    def showPrediction(self, outputPath: str, patientId: str) -> str:
        """Probability, classes at the operating points and the top contributing features (as a table)."""
        import pandas as pd

        from .mrml_tables import showTable, tableNodeFromDataFrame
        from .prediction_text import prediction_summary, top_features_frame

        with open(outputPath) as fh:
            prediction = json.load(fh)
        top = top_features_frame(prediction)
        if isinstance(top, pd.DataFrame) and not top.empty:
            showTable(tableNodeFromDataFrame(top, f"{patientId} top features"))
        return prediction_summary(prediction)

    def showEvaluationPlots(self) -> str:
        """ROC and calibration charts from the study's evaluation tables, when they exist."""
        from .mrml_tables import plotChart, tableNodeFromDataFrame

        store = self._requireStore()
        shown = []
        for tableName, x, ys, title, xTitle, yTitle in (
                ("evaluation_roc", "fpr", ["tpr"], "ROC", "1 - specificity", "sensitivity"),
                ("evaluation_calibration", "predicted", ["observed"], "Calibration", "predicted", "observed")):
            if not store.has_table(tableName):
                continue
            frame = store.read_table(tableName)
            columns = [c for c in ys if c in frame.columns]
            if x not in frame.columns or not columns:
                continue
            tableNode = tableNodeFromDataFrame(frame, tableName)
            plotChart(tableNode, x, columns, title, xTitle, yTitle)
            shown.append(title)
        if not shown:
            return "No evaluation results in this study yet (run 'nacresponse model evaluate')."
        return "Shown: " + ", ".join(shown) + "."

    # ---- Microcalcifications -----------------------------------------------------------------
    def mcDetectArguments(self, patientId: str):
        return cli_calls.mc_detect(self._requireStore().root, [patientId])

    def mcCompareArguments(self, patientId: str):
        return cli_calls.mc_compare(self._requireStore().root, [patientId])

    def _mammogramVolume(self, patientId: str, timepoint: str, view: str):
        from .study_view import loadTimepointImage

        return loadTimepointImage(self._requireStore(), patientId, timepoint, view)

    def showMcDetections(self, patientId: str, view: str, timepoints) -> str:
        """Detections as editable point lists and cluster extents as lines (cm), per timepoint."""
        from .markups import lineWithLength, pointListFromRAS
        from .mc_points import ras_from_mm
        from .volumes import ijkToRASArray

        store = self._requireStore()
        detections = store.read_table("mc_detections")
        clusters = store.read_table("mc_clusters") if store.has_table("mc_clusters") else None
        lines = []
        for timepoint in timepoints:
            rows = detections[(detections["patient_id"] == patientId) & (detections["timepoint"] == timepoint)
                              & (detections["image"] == view)]
            if "kept" in rows.columns:
                rows = rows[rows["kept"].astype(bool)]
            if rows.empty and timepoint not in store.cohort[patientId].timepoints:
                continue
            volume = self._mammogramVolume(patientId, timepoint, view)
            matrix, spacing = ijkToRASArray(volume), volume.GetSpacing()[0]
            pointListFromRAS(ras_from_mm(rows[["x_mm", "y_mm"]].to_numpy(), spacing, matrix) if len(rows) else [],
                             f"{patientId} {timepoint} {view} MCs")
            text = f"{timepoint}: {len(rows)} MCs"
            if clusters is not None:
                mine = clusters[(clusters["patient_id"] == patientId) & (clusters["timepoint"] == timepoint)
                                & (clusters["image"] == view)]
                if not mine.empty:
                    largest = mine.sort_values("extent_mm").iloc[-1]
                    ends = ras_from_mm([[largest["x0_mm"], largest["y0_mm"]], [largest["x1_mm"], largest["y1_mm"]]],
                                       spacing, matrix)
                    lineWithLength(ends[0], ends[1], f"{patientId} {timepoint} {view} MC extent", centimetres=True)
                    text += f", extent {largest['extent_mm'] / 10:.2f} cm"
            lines.append(text)
        return "; ".join(lines) if lines else "No detections for this view."

    def recomputeMcExtent(self, patientId: str, view: str, timepoints) -> str:
        """Extent of the user-edited point lists (largest Feret diameter of all points), per timepoint."""
        import numpy as np

        from .markups import lineWithLength, rasFromPointList
        from .recist_lines import _farthest_pair

        out = []
        for timepoint in timepoints:
            node = slicer.mrmlScene.GetFirstNodeByName(f"{patientId} {timepoint} {view} MCs")
            if node is None:
                continue
            points = rasFromPointList(node)
            if len(points) < 2:
                out.append(f"{timepoint}: {len(points)} MCs, no extent")
                continue
            length, a, b = _farthest_pair(np.asarray(points))
            lineWithLength(points[a], points[b], f"{patientId} {timepoint} {view} MC extent", centimetres=True)
            out.append(f"{timepoint}: {len(points)} MCs, extent {length / 10:.2f} cm")
        return "; ".join(out) if out else "Detect microcalcifications first."

    def mcComparisonText(self, patientId: str) -> str:
        store = self._requireStore()
        if not store.has_table("mc_compare"):
            return "No comparison table yet."
        frame = store.read_table("mc_compare")
        rows = frame[frame["patient_id"] == patientId]
        if rows.empty:
            return f"{patientId}: no pre/post clusters to compare."
        parts = []
        for _, row in rows.iterrows():
            text = f"{row.get('image', '')}: {row.get('category', '?')}"
            if "resmin" in row and bool(row["resmin"]):
                text += " - RESMIN: tumour responded but MCs did not"
            parts.append(text)
        return "; ".join(parts)
