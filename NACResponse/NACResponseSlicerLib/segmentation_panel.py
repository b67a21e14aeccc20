"""Automatic-segmentation panel: MONAI inference in the background (``nacresponse seg predict``),
the DCE functional tumour volume in-process inside a markups ROI box, and RECIST diameters as
markups lines; every result becomes segments the user can edit."""

from __future__ import annotations

import pathlib

import slicer
from slicer.i18n import tr as _

from . import cli_calls
from .naming import TIMEPOINTS, segmentation_name


class SegmentationLogic:
    def segPredictArguments(self, bundleFolder, patientId: str, timepoints):
        if not bundleFolder or str(bundleFolder) == "." or not (pathlib.Path(bundleFolder) / "configs").is_dir():
            raise ValueError("Choose a MONAI bundle folder (with configs/metadata.json and models/model.pt).")
        return cli_calls.seg_predict(self._requireStore().root, bundleFolder, [patientId], timepoints)

    def loadMethodSegmentations(self, patientId: str, timepoints, method: str):
        """Load the newest segmentation of one method (e.g. monai) per timepoint as editable segments."""
        from .segmentations import loadMaskFile, newSegmentationNode
        from .study_view import loadTimepointImage, placeInFolder

        store = self.reloadCohort()  # the background command added manifest rows
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

        from .ijk_ras import ras_from_lps
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
        from .ijk_ras import ras_from_index
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


class SegmentationHandlers:
    def connectSegmentationPanel(self) -> None:
        self._connectButtons([(self.ui.runMonaiButton, self.onRunMonai), (self.ui.runFtvButton, self.onRunFtv),
                              (self.ui.recistButton, self.onShowRecist)])

    def onRunMonai(self) -> None:
        p = self._parameterNode
        patientId = self._patient()
        timepoints = sorted({p.timepointA, p.timepointB}, key=TIMEPOINTS.index)
        arguments = self.logic.segPredictArguments(p.segModelFolder, patientId, timepoints)

        def show():
            node = self.logic.loadMethodSegmentations(patientId, timepoints, "monai")
            if node is not None:
                p.segmentationNode = node

        self._runTask(arguments, _("MONAI segmentation"), onSuccess=show)

    def onRunFtv(self) -> None:
        p = self._parameterNode
        result = self.logic.runFtv(self._patient(), p.timepointB, p.roiNode, p.settings.peThreshold,
                                   p.settings.serThreshold, p.settings.backgroundPercent)
        p.segmentationNode = result["segmentationNode"]
        self.ui.segmentationResultLabel.text = _("FTV {volume:.2f} cm3 ({voxels} voxels) at {tp}.").format(
            volume=result["volume_cm3"], voxels=result["n_voxels"], tp=p.timepointB)

    def onShowRecist(self) -> None:
        lines = self.logic.showRecistLines(self._parameterNode.segmentationNode)
        self.ui.segmentationResultLabel.text = "; ".join(f"{name}: {length:.1f} mm" for name, length in lines)
