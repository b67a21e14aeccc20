"""Segmentation nodes <-> label-map files on a chosen reference volume.

Every reader's segmentation is exported on the grid of the same reference image (the image key the
study's segmentations reference, ``dce_early`` by default), so agreement metrics and radiomics in the
core compare like with like.
"""

from __future__ import annotations

import slicer
import vtk

from .volumes import imageFromVolume, volumeFromImage


def newSegmentationNode(name: str, referenceVolume):
    segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentationNode.CreateDefaultDisplayNodes()
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolume)
    return segmentationNode


def importLabelmapImage(labelImage, segmentationNode, referenceVolume, segmentName: str | None = None,
                        color=None) -> list[str]:
    """Add the non-zero labels of a SimpleITK label image as segments; returns the new segment IDs."""
    labelmapNode = volumeFromImage(labelImage, "__nacresponse_import__", labelmap=True)
    segmentation = segmentationNode.GetSegmentation()
    before = {segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())}
    try:
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolume)
        if not slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmapNode, segmentationNode):
            raise RuntimeError(f"could not import the label map into {segmentationNode.GetName()}")
    finally:
        displayNode = labelmapNode.GetDisplayNode()
        if displayNode is not None and displayNode.GetColorNode() is not None:
            slicer.mrmlScene.RemoveNode(displayNode.GetColorNode())
        slicer.mrmlScene.RemoveNode(labelmapNode)
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
    labelmapNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__nacresponse_export__")
    try:
        if not slicer.modules.segmentations.logic().ExportSegmentsToLabelmapNode(
                segmentationNode, ids, labelmapNode, referenceVolume):
            raise RuntimeError(f"could not export {segmentationNode.GetName()} on {referenceVolume.GetName()}")
        return imageFromVolume(labelmapNode)
    finally:
        displayNode = labelmapNode.GetDisplayNode()
        if displayNode is not None and displayNode.GetColorNode() is not None:
            slicer.mrmlScene.RemoveNode(displayNode.GetColorNode())
        slicer.mrmlScene.RemoveNode(labelmapNode)


def saveSegmentAsMask(segmentationNode, segmentId: str, referenceVolume, path: str) -> None:
    """One segment -> binary mask file (label 1) on the reference grid, written atomically."""
    import SimpleITK as sitk

    from NACResponseLib.imageio import write_image

    image = exportToLabelmapImage(segmentationNode, referenceVolume, [segmentId])
    write_image(sitk.Cast(image > 0, sitk.sitkUInt8), path)
