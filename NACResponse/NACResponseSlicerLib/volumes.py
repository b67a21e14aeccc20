"""MRML volume nodes <-> numpy arrays and SimpleITK images, keeping the IJK-to-RAS geometry.

The core reads and writes SimpleITK images (LPS); Slicer nodes are RAS.  ``ijk_ras`` holds the
matrix algebra (unit-tested in CI); this file only moves voxels in and out of the scene, so an
image loaded here and a mask computed by the core share exactly one voxel grid.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk

from .ijk_ras import ijk_to_ras, sitk_geometry


def ijkToRASArray(volumeNode) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def volumeFromImage(image, name: str, labelmap: bool = False, volumeNode=None):
    """SimpleITK image (2D or 3D, scalar or multi-component such as RGB) -> new (or updated) volume node.

    The image's dimension decides, not the array's rank: a 2D RGB image is one slice of a vector
    volume, not a 3-slice scalar volume."""
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(image)
    if image.GetDimension() == 2:  # mammogram or 2D ultrasound: one axial slice
        array = array[np.newaxis, ...]
    vector = image.GetNumberOfComponentsPerPixel() > 1
    if vector and labelmap:
        raise ValueError(f"{name}: a label map needs one component per pixel, got {image.GetNumberOfComponentsPerPixel()}")
    matrix = ijk_to_ras(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    if volumeNode is None:
        className = ("vtkMRMLLabelMapVolumeNode" if labelmap else
                     "vtkMRMLVectorVolumeNode" if vector else "vtkMRMLScalarVolumeNode")
        return slicer.util.addVolumeFromArray(array, ijkToRAS=matrix, name=name, nodeClassName=className)
    volumeNode.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    slicer.util.updateVolumeFromArray(volumeNode, array)
    volumeNode.SetName(name)
    return volumeNode


def imageFromVolume(volumeNode, dimension: int = 3):
    """Volume node -> SimpleITK image with the node's geometry (``dimension=2`` for a mammogram)."""
    import SimpleITK as sitk

    array = slicer.util.arrayFromVolume(volumeNode).copy()
    spacing, origin, direction = sitk_geometry(ijkToRASArray(volumeNode), dimension)
    if dimension == 2:
        array = array[0]
    vector = volumeNode.GetImageData() is not None and volumeNode.GetImageData().GetNumberOfScalarComponents() > 1
    image = sitk.GetImageFromArray(array, isVector=vector)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def loadImageFile(path: str, name: str, labelmap: bool = False):
    """Read a study file with the core's reader (clear errors for NaN, unknown formats) into the scene."""
    from NACResponseLib.imageio import read_image

    return volumeFromImage(read_image(path), name, labelmap=labelmap)


def setWindowLevelFromData(volumeNode) -> tuple[float, float]:
    """Robust percentile window/level (see ``naming.window_level``) instead of Slicer's automatic one."""
    from .naming import window_level

    window, level = window_level(slicer.util.arrayFromVolume(volumeNode))
    displayNode = volumeNode.GetDisplayNode()
    if displayNode is None:
        volumeNode.CreateDefaultDisplayNodes()
        displayNode = volumeNode.GetDisplayNode()
    displayNode.SetAutoWindowLevel(False)
    displayNode.SetWindowLevel(window, level)
    return window, level
