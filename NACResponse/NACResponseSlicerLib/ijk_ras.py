"""IJK-to-RAS matrices from and to SimpleITK-style geometry (Slicer-free, numpy only).

SimpleITK (and every file the core writes) uses LPS physical coordinates:
``LPS = origin + direction @ diag(spacing) @ ijk``.  Slicer volume nodes use RAS, which flips the
first two axes.  numpy arrays from ``slicer.util.arrayFromVolume`` and from
``SimpleITK.GetArrayFromImage`` share the (k, j, i) order, so only the matrix needs converting.
2D images (mammograms) are embedded as a single slice with unit spacing along k.
"""

from __future__ import annotations

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _as3d(spacing, origin, direction):
    spacing = np.asarray(spacing, float)
    origin = np.asarray(origin, float)
    direction = np.asarray(direction, float)
    dim = spacing.size
    if dim == 3:
        return spacing, origin, direction.reshape(3, 3)
    if dim == 2:
        d3 = np.eye(3)
        d3[:2, :2] = direction.reshape(2, 2)
        return np.append(spacing, 1.0), np.append(origin, 0.0), d3
    raise ValueError(f"only 2D and 3D geometry is supported, got {dim}D")


def ijk_to_ras(spacing, origin, direction) -> np.ndarray:
    """4x4 IJK-to-RAS matrix for a SimpleITK geometry (spacing, origin, flat direction cosines)."""
    spacing, origin, direction = _as3d(spacing, origin, direction)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(spacing)
    matrix[:3, 3] = LPS_TO_RAS @ origin
    return matrix


def sitk_geometry(ijk_to_ras_matrix, dimension: int = 3) -> tuple[tuple, tuple, tuple]:
    """Inverse of :func:`ijk_to_ras`: (spacing, origin, direction) in SimpleITK's LPS convention."""
    m = np.asarray(ijk_to_ras_matrix, float)
    lps = LPS_TO_RAS @ m[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if np.any(spacing <= 0):
        raise ValueError("IJK-to-RAS matrix has a zero-length axis")
    direction = lps / spacing
    origin = LPS_TO_RAS @ m[:3, 3]
    if dimension == 2:
        return tuple(spacing[:2]), tuple(origin[:2]), tuple(direction[:2, :2].ravel())
    return tuple(spacing), tuple(origin), tuple(direction.ravel())


def ras_from_index(ijk_to_ras_matrix, indices) -> np.ndarray:
    """(N, 3) voxel indices in (i, j, k) order -> (N, 3) RAS points (2D: pass (i, j), k = 0)."""
    idx = np.atleast_2d(np.asarray(indices, float))
    if idx.shape[1] == 2:
        idx = np.column_stack([idx, np.zeros(len(idx))])
    homogeneous = np.column_stack([idx, np.ones(len(idx))])
    return (homogeneous @ np.asarray(ijk_to_ras_matrix, float).T)[:, :3]


def index_from_ras(ijk_to_ras_matrix, points) -> np.ndarray:
    """(N, 3) RAS points -> continuous (i, j, k) indices."""
    pts = np.atleast_2d(np.asarray(points, float))
    homogeneous = np.column_stack([pts, np.ones(len(pts))])
    return (homogeneous @ np.linalg.inv(np.asarray(ijk_to_ras_matrix, float)).T)[:, :3]


def ras_from_lps(points) -> np.ndarray:
    """Physical LPS points (what the core reports, e.g. MC positions in mm) -> RAS."""
    pts = np.atleast_2d(np.asarray(points, float))
    if pts.shape[1] == 2:
        pts = np.column_stack([pts, np.zeros(len(pts))])
    return pts @ LPS_TO_RAS.T
