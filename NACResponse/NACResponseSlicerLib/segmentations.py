"""Segmentation nodes <-> label-map files on a chosen reference volume.

Every reader's segmentation is exported on the grid of the same reference image (the image key the
study's segmentations reference, ``dce_early`` by default), so agreement metrics and radiomics in the
core compare like with like.
"""

from __future__ import annotations

import slicer
import vtk

from .volumes import imageFromVolume, volumeFromImage


def _colourNodeIds() -> set[str]:
    return {node.GetID() for node in slicer.util.getNodesByClass("vtkMRMLColorNode")}


def _removeTemporaryVolume(volumeNode, colourNodesBefore: set[str]) -> None:
    """Remove a temporary label map and the colour table made for it, if one was; never a colour node
    that existed before: label maps show Slicer's shared tables (``vtkMRMLColorTableNodeLabels``),
    which every module uses."""
    slicer.mrmlScene.RemoveNode(volumeNode)
    for nodeId in _colourNodeIds() - colourNodesBefore:
        slicer.mrmlScene.RemoveNode(slicer.mrmlScene.GetNodeByID(nodeId))


def newSegmentationNode(name: str, referenceVolume):
    segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentationNode.CreateDefaultDisplayNodes()
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolume)
    return segmentationNode


def importLabelmapImage(labelImage, segmentationNode, referenceVolume, segmentName: str | None = None,
                        color=None) -> list[str]:
    """Add the non-zero labels of a SimpleITK label image as segments; returns the new segment IDs."""
    colourNodes = _colourNodeIds()
    labelmapNode = volumeFromImage(labelImage, "__nacresponse_import__", labelmap=True)
    segmentation = segmentationNode.GetSegmentation()
    before = {segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())}
    try:
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolume)
        if not slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmapNode, segmentationNode):
            raise RuntimeError(f"could not import the label map into {segmentationNode.GetName()}")
    finally:
        _removeTemporaryVolume(labelmapNode, colourNodes)
    newIds = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())
              if segmentation.GetNthSegmentID(i) not in before]
    for index, segmentId in enumerate(newIds):
        segment = segmentation.GetSegment(segmentId)
        if segmentName:
            segment.SetName(segmentName if len(newIds) == 1 else f"{segmentName} {index + 1}")
        if color is not None:
            segment.SetColor(*color)
    return newIds


def loadMaskFile(path: str, segmentationNode, referenceVolume, referenceImage=None, segmentName: str = "tumour",
                 label: int = 1, color=(0.9, 0.3, 0.2)) -> list[str]:
    """Read a mask with the core's checks (empty mask, absent label, geometry mismatch) and import it."""
    import SimpleITK as sitk

    from NACResponseLib.imageio import read_mask

    mask = read_mask(path, label=label, reference=referenceImage, reference_name="reference image")
    binary = sitk.Cast(mask == label, sitk.sitkUInt8)
    return importLabelmapImage(binary, segmentationNode, referenceVolume, segmentName, color)


def segmentIdsOf(segmentationNode) -> list[str]:
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def exportToLabelmapImage(segmentationNode, referenceVolume, segmentIds: list[str] | None = None):
    """Segments -> SimpleITK label image on ``referenceVolume``'s grid (segment i -> label i + 1)."""
    ids = vtk.vtkStringArray()
    for segmentId in segmentIds if segmentIds is not None else segmentIdsOf(segmentationNode):
        ids.InsertNextValue(segmentId)
    colourNodes = _colourNodeIds()
    labelmapNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__nacresponse_export__")
    try:
        if not slicer.modules.segmentations.logic().ExportSegmentsToLabelmapNode(
                segmentationNode, ids, labelmapNode, referenceVolume):
            raise RuntimeError(f"could not export {segmentationNode.GetName()} on {referenceVolume.GetName()}")
        return imageFromVolume(labelmapNode)
    finally:
        _removeTemporaryVolume(labelmapNode, colourNodes)
