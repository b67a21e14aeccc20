"""Markups helpers: point lists for detections, lines whose length is the measurement shown."""

from __future__ import annotations

import numpy as np
import slicer


def pointListFromRAS(points, name: str, pointListNode=None, labels=None, color=(1.0, 0.8, 0.1)):
    """(N, 3) RAS points -> a (new or cleared) point list the user can edit (add/delete points)."""
    if pointListNode is None:
        pointListNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        pointListNode.CreateDefaultDisplayNodes()
    wasModifying = pointListNode.StartModify()
    try:
        pointListNode.RemoveAllControlPoints()
        for index, point in enumerate(np.atleast_2d(np.asarray(points, float)) if len(points) else []):
            label = labels[index] if labels is not None else ""
            pointListNode.AddControlPoint(float(point[0]), float(point[1]), float(point[2]), label)
    finally:
        pointListNode.EndModify(wasModifying)
    displayNode = pointListNode.GetDisplayNode()
    if displayNode is not None:
        displayNode.SetSelectedColor(*color)
        displayNode.SetPointLabelsVisibility(False)
    return pointListNode


def rasFromPointList(pointListNode) -> np.ndarray:
    """Current (possibly user-edited) control points, (N, 3) RAS."""
    if pointListNode.GetNumberOfControlPoints() == 0:
        return np.zeros((0, 3))
    return slicer.util.arrayFromMarkupsControlPoints(pointListNode)


def lineWithLength(startRAS, endRAS, name: str, lineNode=None, color=(0.2, 0.8, 1.0)):
    """A line between two RAS points; its length shows in the views.

    The length is shown in the scene's length unit: the Units module owns it (Edit > Application
    Settings > Units), and every measurement resets to it when it updates, so a per-line unit
    would not last.  Panels that report another unit (MC extents in cm) say so in their text."""
    if lineNode is None:
        lineNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", name)
        lineNode.CreateDefaultDisplayNodes()
    lineNode.RemoveAllControlPoints()
    lineNode.AddControlPoint(*(float(v) for v in startRAS))
    lineNode.AddControlPoint(*(float(v) for v in endRAS))
    lineNode.SetName(name)
    measurement = lineNode.GetMeasurement("length")
    if measurement is not None:
        measurement.SetEnabled(True)
    lineNode.UpdateAllMeasurements()
    displayNode = lineNode.GetDisplayNode()
    if displayNode is not None:
        displayNode.SetSelectedColor(*color)
        displayNode.SetPropertiesLabelVisibility(True)
    return lineNode


def sceneLengthUnit() -> str:
    """The suffix of the scene's length unit (``mm`` unless the user changed it in the Units settings)."""
    selectionNode = slicer.app.applicationLogic().GetSelectionNode()
    unitNode = slicer.mrmlScene.GetNodeByID(selectionNode.GetUnitNodeID("length")) if selectionNode else None
    return unitNode.GetSuffix() if unitNode is not None else "mm"


def lineLengthMm(lineNode) -> float:
    return float(lineNode.GetLineLengthWorld())
