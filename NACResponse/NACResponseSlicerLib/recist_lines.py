"""End points of the RECIST longest in-plane diameter, so the viewer can draw it (Slicer-free).

The measurement is the core's (``NACResponseLib.segmentation.measurements``): distances between
voxel-outline corners, on the slice (third axis) where the in-plane Feret diameter is largest.
This file only turns its (z, y, x) end points into the (i, j, k) indices a volume's IJK-to-RAS
matrix takes.
"""

from __future__ import annotations

import numpy as np


def longest_inplane_segment(mask_zyx, spacing_xyz) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(length in mm, start (i, j, k), end (i, j, k)) in continuous voxel indices; None for an empty mask.

    ``mask_zyx`` is a numpy array in (k, j, i) order (as from ``arrayFromVolume``); a 2D array is one
    slice.  Apply the volume's IJK-to-RAS matrix to the returned indices to get RAS points.
    """
    from NACResponseLib.segmentation.measurements import longest_inplane_diameter_ends

    binary = np.asarray(mask_zyx) != 0
    if binary.ndim == 2:
        binary = binary[np.newaxis]
    spacing = (float(spacing_xyz[0]), float(spacing_xyz[1]), float(spacing_xyz[2]) if len(spacing_xyz) > 2 else 1.0)
    length, where, start, end = longest_inplane_diameter_ends(binary, None, spacing)
    if where is None:
        return None
    return length, start[::-1].copy(), end[::-1].copy()
