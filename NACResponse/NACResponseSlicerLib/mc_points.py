"""Microcalcification positions: core millimetres <-> scene RAS points (Slicer-free).

The detector (``NACResponseLib.mc.detect``) reports ``x_mm = (col + 0.5) * spacing`` and
``y_mm = (row + 0.5) * spacing`` from the image corner; in the scene a mammogram is a one-slice
volume whose voxel (i=col, j=row) centre maps to RAS through its IJK-to-RAS matrix.
"""

from __future__ import annotations

import numpy as np

from .ijk_ras import index_from_ras, ras_from_index


def ras_from_mm(xy_mm, spacing_mm: float, ijk_to_ras_matrix) -> np.ndarray:
    xy = np.atleast_2d(np.asarray(xy_mm, float)).reshape(-1, 2)
    cols_rows = xy / float(spacing_mm) - 0.5
    return ras_from_index(ijk_to_ras_matrix, cols_rows)


def mm_from_ras(points_ras, spacing_mm: float, ijk_to_ras_matrix) -> np.ndarray:
    pts = np.atleast_2d(np.asarray(points_ras, float)).reshape(-1, 3)
    if len(pts) == 0:
        return np.zeros((0, 2))
    ijk = index_from_ras(ijk_to_ras_matrix, pts)
    return (ijk[:, :2] + 0.5) * float(spacing_mm)
