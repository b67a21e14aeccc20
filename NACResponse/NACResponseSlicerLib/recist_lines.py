"""End points of the RECIST longest in-plane diameter, so the viewer can draw it (Slicer-free).

The core (``NACResponseLib.segmentation.measurements``) reports the length; a markups line also
needs the two points.  Same convention as the core: distances between voxel-outline corners, on
the slice (third axis) where the in-plane Feret diameter is largest.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _corners_2d(binary: np.ndarray) -> np.ndarray:
    """Corner points (row, col) in continuous index units of the outline voxels of a 2D mask."""
    outline = binary & ~ndimage.binary_erosion(binary, border_value=0)
    idx = np.argwhere(outline).astype(float)
    offsets = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    return np.unique((idx[:, None, :] + offsets[None]).reshape(-1, 2), axis=0)


def _farthest_pair(points_mm: np.ndarray) -> tuple[float, int, int]:
    if len(points_mm) < 2:
        return 0.0, 0, 0
    candidates = np.arange(len(points_mm))
    if len(points_mm) > 64:
        from scipy.spatial import ConvexHull, QhullError

        try:
            candidates = ConvexHull(points_mm).vertices
        except QhullError:  # collinear points
            pass
    pts = points_mm[candidates]
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    a, b = np.unravel_index(int(np.argmax(d2)), d2.shape)
    return float(np.sqrt(d2[a, b])), int(candidates[a]), int(candidates[b])


def longest_inplane_segment(mask_zyx, spacing_xyz) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(length in mm, start (i, j, k), end (i, j, k)) in continuous voxel indices; None for an empty mask.

    ``mask_zyx`` is a numpy array in (k, j, i) order (as from ``arrayFromVolume``); a 2D array is one
    slice.  Apply the volume's IJK-to-RAS matrix to the returned indices to get RAS points.
    """
    binary = np.asarray(mask_zyx) != 0
    if binary.ndim == 2:
        binary = binary[np.newaxis]
    if not binary.any():
        return None
    sx, sy = float(spacing_xyz[0]), float(spacing_xyz[1])
    best = None
    for k in np.flatnonzero(binary.any(axis=(1, 2))):
        corners = _corners_2d(binary[k])  # (row=j, col=i)
        length, a, b = _farthest_pair(corners * np.array([sy, sx]))
        if best is None or length > best[0]:
            start = np.array([corners[a, 1], corners[a, 0], float(k)])
            end = np.array([corners[b, 1], corners[b, 0], float(k)])
            best = (length, start, end)
    return best
