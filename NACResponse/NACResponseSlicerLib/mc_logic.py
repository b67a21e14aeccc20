"""Microcalcification panel logic: detect on the loaded mammograms (``nacresponse mc detect`` then
``mc extent``), show the kept MCs as editable point lists and the largest cluster's extent as a line
for each timepoint (extents reported in cm), save the user's additions/deletions through the core's editing API
(``NACResponseLib.mc.cohort.save_edits``, re-applied by ``mc extent``), and compare pre/post
(``mc compare``: change category and RESMIN flag)."""

from __future__ import annotations

import slicer

from . import cli_calls

MC_CASE_ATTRIBUTE = "NACResponse.mcCase"  # "<patient>/<timepoint>/<image>" on MC point lists


def mcPointListName(patientId: str, timepoint: str, image: str) -> str:
    return f"{patientId} {timepoint} {image} MCs"


def mcExtentLineName(patientId: str, timepoint: str, image: str) -> str:
    return f"{patientId} {timepoint} {image} MC extent"


class McLogic:
    def __init__(self, context) -> None:
        self.context = context

    def mcDetectArguments(self, timepoints):
        return cli_calls.mc_detect(self.context.requireStore().root, timepoints)

    def mcExtentArguments(self):
        return cli_calls.mc_extent(self.context.requireStore().root)

    def mcCompareArguments(self, pre: str, post: str):
        return cli_calls.mc_compare(self.context.requireStore().root, pre, post)

    def _mammogram(self, patientId: str, timepoint: str, image: str):
        """(volume node, IJK-to-RAS matrix, the core's pixel spacing) or None without that image."""
        from .mc_results import image_rows
        from .study_view import loadTimepointImage
        from .volumes import ijkToRASArray

        patient = self.context.requireStore().cohort[patientId]
        if timepoint not in patient.timepoints or not patient.timepoints[timepoint].has_image(image):
            return None
        volume = loadTimepointImage(self.context.store, patientId, timepoint, image)
        rows = image_rows(self.context.readTable("mc_images"), patientId, timepoint, image)
        spacing = float(rows["spacing_mm"].iloc[0]) if rows is not None and len(rows) else volume.GetSpacing()[0]
        return volume, ijkToRASArray(volume), spacing

    def showMcResults(self, patientId: str, image: str, timepoints) -> str:
        """Kept MCs (after edits) as point lists, the largest cluster's extent as a line; the text gives cm."""
        from .markups import lineWithLength, pointListFromRAS
        from .mc_points import ras_from_mm
        from .mc_results import kept_points_mm, largest_cluster
        from .mrml_tables import namedNode
        from .study_view import SIDE_BY_SIDE_VIEWS, showOnlyInView, showSideBySide

        detections = self.context.readTable("mc_mcs")
        if detections is None:
            detections = self.context.readTable("mc_detections")
        if detections is None:
            raise ValueError("No detections yet (run Detect).")
        clusters = self.context.readTable("mc_clusters")
        volumes, lines, shown = [], [], []
        for timepoint in timepoints:
            loaded = self._mammogram(patientId, timepoint, image)
            if loaded is None:
                continue
            volume, matrix, spacing = loaded
            volumes.append(volume)
            points = kept_points_mm(detections, patientId, timepoint, image)
            name = mcPointListName(patientId, timepoint, image)
            pointList = pointListFromRAS(ras_from_mm(points, spacing, matrix) if len(points) else [], name,
                                         namedNode("vtkMRMLMarkupsFiducialNode", name))
            pointList.SetAttribute(MC_CASE_ATTRIBUTE, f"{patientId}/{timepoint}/{image}")
            shown.append([pointList])
            lineName = mcExtentLineName(patientId, timepoint, image)
            oldLine = namedNode("vtkMRMLMarkupsLineNode", lineName)
            largest = largest_cluster(clusters, patientId, timepoint, image)
            text = f"{timepoint}: {len(points)} MCs"
            if largest is not None and largest["extent_mm"] > 0:
                ends = ras_from_mm([[largest["end1_x_mm"], largest["end1_y_mm"]],
                                    [largest["end2_x_mm"], largest["end2_y_mm"]]], spacing, matrix)
                shown[-1].append(lineWithLength(ends[0], ends[1], lineName, oldLine))
                text += f", largest cluster {int(largest['n'])} MCs, extent {largest['extent_mm'] / 10:.2f} cm"
            elif oldLine is not None:
                slicer.mrmlScene.RemoveNode(oldLine)
                text += ", no cluster"
            lines.append(text)
        if not volumes:
            raise ValueError(f"{patientId} has no {image} mammogram at {', '.join(timepoints)}")
        showSideBySide(volumes[0], volumes[-1])
        # Mammograms of both timepoints lie in one plane: each timepoint's markups only in its own view.
        for index, nodes in enumerate(shown):
            for node in nodes:
                showOnlyInView(node, SIDE_BY_SIDE_VIEWS[index] if len(shown) == 2 else None)
        return "; ".join(lines)

    def saveMcEdits(self, patientId: str, image: str, timepoints, actor: str | None = None) -> list:
        """Store each timepoint's point list as the core's edits of the detector output; returns the files."""
        from NACResponseLib.mc.cohort import save_edits

        from .markups import rasFromPointList
        from .mc_points import mm_from_ras
        from .mc_results import edits_from_points, kept_points_mm
        from .mrml_tables import namedNode

        detections = self.context.readTable("mc_detections")
        if detections is None:
            raise ValueError("No detections yet (run Detect).")
        saved = []
        for timepoint in timepoints:
            pointList = namedNode("vtkMRMLMarkupsFiducialNode", mcPointListName(patientId, timepoint, image))
            loaded = self._mammogram(patientId, timepoint, image)
            if pointList is None or loaded is None:
                continue
            _volume, matrix, spacing = loaded
            edited = mm_from_ras(rasFromPointList(pointList), spacing, matrix)
            edits = edits_from_points(kept_points_mm(detections, patientId, timepoint, image), edited)
            saved.append(save_edits(self.context.store, patientId, timepoint, image, edits, actor=actor or None))
        if not saved:
            raise ValueError("No MC point lists of this mammogram in the scene (run Detect).")
        return saved

    def mcComparisonText(self, patientId: str, image: str) -> str:
        from .mc_results import laterality_of, resmin_text

        return resmin_text(self.context.readTable("mc_resmin"), patientId,
                           laterality_of(self.context.readTable("mc_images"), patientId, image))
