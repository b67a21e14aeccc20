"""Automatic-segmentation panel logic: MONAI inference in the background (``nacresponse seg predict``),
the DCE functional tumour volume in-process inside a markups ROI box, and RECIST diameters as
markups lines.  Every result is a segmentation node with its reference volume, so the panel hands
it to the embedded Segment Editor for editing."""

from __future__ import annotations

import numpy as np
import slicer

from . import cli_calls
from .context import given_path
from .naming import segmentation_name


def roiCornersRAS(roiNode) -> np.ndarray:
    """The eight corners (world RAS) of a markups ROI: its own rotation and parent transforms included."""
    bounds = [0.0] * 6
    roiNode.GetObjectBounds(bounds)  # ROI (object) coordinates, centred on the ROI
    matrix = slicer.util.arrayFromVTKMatrix(roiNode.GetObjectToWorldMatrix())
    corners = np.array([[x, y, z, 1.0] for x in bounds[0:2] for y in bounds[2:4] for z in bounds[4:6]])
    return (corners @ matrix.T)[:, :3]


class SegmentationLogic:
    def __init__(self, context) -> None:
        self.context = context

    def segPredictArguments(self, bundleFolder, patientId: str, timepoints):
        bundle = given_path(bundleFolder)
        if bundle is None or not (bundle / "configs").is_dir():
            raise ValueError("Choose a MONAI bundle folder (with configs/metadata.json and models/model.pt).")
        return cli_calls.seg_predict(self.context.requireStore().root, bundle, [patientId], timepoints)

    def loadMethodSegmentations(self, patientId: str, timepoints, method: str):
        """Load the newest segmentation of one method (e.g. monai) per timepoint as editable segments.

        ``timepoints`` in view order (A, B): with two, each segmentation shows only in its timepoint's
        side-by-side view.  Returns (segmentation node, reference volume) of the last one, or None."""
        from .segmentations import loadMaskFile, newSegmentationNode
        from .study_view import SIDE_BY_SIDE_VIEWS, loadTimepointImage, placeInFolder, showOnlyInView

        store = self.context.reloadCohort()  # the background command added manifest rows
        patient = store.cohort[patientId]
        last = None
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
            if len(timepoints) == 2:
                showOnlyInView(node, SIDE_BY_SIDE_VIEWS[list(timepoints).index(timepoint)])
            last = (node, referenceVolume)
        return last

    def runFtv(self, patientId: str, timepoint: str, roiNode, peThreshold: float, serThreshold: float,
               backgroundPercent: float) -> dict:
        """DCE functional tumour volume inside a markups ROI box; the mask becomes an editable segment."""
        from NACResponseLib.imageio import read_image
        from NACResponseLib.segmentation.ftv import FTVConfig, box_from_mm, functional_tumour_volume

        from .ijk_ras import ras_from_lps
        from .segmentations import importLabelmapImage, newSegmentationNode
        from .study_view import loadTimepointImage, placeInFolder

        store = self.context.requireStore()
        tp = store.cohort[patientId].timepoint(timepoint)
        pre, early, late = (read_image(store.path(tp.image(k).path)) for k in ("dce_pre", "dce_early", "dce_late"))
        box = None
        if roiNode is not None:
            box = box_from_mm(pre, *ras_from_lps(roiCornersRAS(roiNode)))  # RAS <-> LPS is its own inverse
        config = FTVConfig(pe_threshold=peThreshold, ser_threshold=serThreshold, background_percent=backgroundPercent)
        result = functional_tumour_volume(pre, early, late, box=box, config=config)
        referenceVolume = loadTimepointImage(store, patientId, timepoint, "dce_early")
        node = newSegmentationNode(segmentation_name(patientId, timepoint, "auto", "ftv"), referenceVolume)
        if result.n_voxels:
            importLabelmapImage(result.mask, node, referenceVolume, "FTV", (1.0, 0.6, 0.0))
        else:
            node.GetSegmentation().AddEmptySegment("FTV", "FTV", [1.0, 0.6, 0.0])
        placeInFolder(node, patientId, timepoint)
        return {"segmentationNode": node, "referenceVolume": referenceVolume, "box": box,
                "volume_cm3": result.volume_cm3, "n_voxels": result.n_voxels,
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
