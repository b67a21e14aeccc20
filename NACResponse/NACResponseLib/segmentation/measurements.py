"""Tumour size measurements used in response assessment, and the RECIST 1.1 category.

Diameters are measured edge to edge on the voxel outline (the corners of the voxels), so a box
of n voxels of spacing s measures n * s, like a calliper on the displayed lesion.  The in-plane
diameter is the RECIST 1.1 "longest diameter on the acquisition plane": the largest Feret
diameter within any one slice of the image's third (slice) axis.  Physical distances use the
voxel spacing; the direction cosines are a rotation and do not change them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputError

RECIST_CATEGORIES = ("CR", "PR", "SD", "PD")


def _binary(mask: sitk.Image | np.ndarray, label: int | None, spacing) -> tuple[np.ndarray, np.ndarray]:
    """(bool array in z, y, x order, spacing in z, y, x order)."""
    if isinstance(mask, sitk.Image):
        array = sitk.GetArrayViewFromImage(mask)
        sp = np.asarray(tuple(reversed(mask.GetSpacing())), float)
    else:
        if spacing is None:
            raise ValueError("a numpy mask needs its spacing (in x, y, z order)")
        array = np.asarray(mask)
        sp = np.asarray(tuple(reversed(spacing)), float)
    if array.ndim != len(sp):
        raise InputError(f"mask has {array.ndim} dimensions but {len(sp)} spacing values")
    binary = (array == label) if label is not None else (array != 0)
    return np.asarray(binary, bool), sp


def volume_ml(mask: sitk.Image | np.ndarray, label: int | None = 1, spacing=None) -> float:
    """Volume in ml (cm3): voxel count x voxel volume."""
    binary, sp = _binary(mask, label, spacing)
    return float(binary.sum()) * float(np.prod(sp)) / 1000.0


def _corner_indices(binary: np.ndarray) -> np.ndarray:
    """Corners (continuous voxel indices, array order) of the outline voxels of a 2D or 3D mask."""
    outline = binary & ~ndimage.binary_erosion(binary, border_value=0)
    idx = np.argwhere(outline).astype(float)
    offsets = np.array(np.meshgrid(*[[-0.5, 0.5]] * binary.ndim, indexing="ij")).reshape(binary.ndim, -1).T
    corners = (idx[:, None, :] + offsets[None]).reshape(-1, binary.ndim)
    return np.unique(corners, axis=0)


def _corner_points(binary: np.ndarray, sp: np.ndarray) -> np.ndarray:
    """Physical corners (mm) of the outline voxels of a 2D or 3D mask."""
    return _corner_indices(binary) * sp


def _feret_pair(points: np.ndarray) -> tuple[float, int, int]:
    """Largest distance between two points and their row numbers (on the convex hull when there are many)."""
    if len(points) < 2:
        return 0.0, 0, 0
    candidates = np.arange(len(points))
    if len(points) > 64:
        from scipy.spatial import ConvexHull, QhullError

        try:
            candidates = ConvexHull(points).vertices
        except (QhullError, ValueError):  # flat sets: every point is a candidate
            pass
    hull = points[candidates]
    best, pair = 0.0, (0, 0)
    for i in range(0, len(hull), 512):  # blocks keep memory bounded
        d = np.linalg.norm(hull[i:i + 512, None, :] - hull[None, :, :], axis=-1)
        a, b = np.unravel_index(int(np.argmax(d)), d.shape)
        if d[a, b] > best:
            best, pair = float(d[a, b]), (int(candidates[i + a]), int(candidates[b]))
    return best, pair[0], pair[1]


def _feret(points: np.ndarray) -> float:
    """Largest distance between two points."""
    return _feret_pair(points)[0]


def longest_inplane_diameter_ends(mask: sitk.Image | np.ndarray, label: int | None = 1, spacing=None):
    """The RECIST longest in-plane diameter with its end points, so a viewer can draw it.

    Returns (mm, slice index, start, end), the ends as continuous voxel indices (z, y, x) of outline
    corners; (0.0, None, None, None) for an empty mask.  A 2D mask is slice 0.
    """
    binary, sp = _binary(mask, label, spacing)
    if binary.ndim == 2:
        binary, sp = binary[np.newaxis], np.r_[1.0, sp]
    best = (0.0, None, None, None)
    for k in np.flatnonzero(binary.any(axis=(1, 2))):
        corners = _corner_indices(binary[k])
        d, a, b = _feret_pair(corners * sp[1:])
        if d > best[0]:
            best = (d, int(k), np.r_[float(k), corners[a]], np.r_[float(k), corners[b]])
    return best


def longest_inplane_diameter_mm(mask: sitk.Image | np.ndarray, label: int | None = 1,
                                spacing=None) -> tuple[float, int | None]:
    """RECIST longest diameter (mm) on the acquisition plane and the slice index where it lies."""
    length, where, _start, _end = longest_inplane_diameter_ends(mask, label, spacing)
    return length, where


def max_3d_diameter_mm(mask: sitk.Image | np.ndarray, label: int | None = 1, spacing=None) -> float:
    """Largest distance (mm) between two points of the lesion outline in 3D."""
    binary, sp = _binary(mask, label, spacing)
    return _feret(_corner_points(binary, sp)) if binary.any() else 0.0


def area_mm2(mask: sitk.Image | np.ndarray, label: int | None = 1, spacing=None) -> float:
    """Area in mm2 of a 2D outline: pixel count x pixel area."""
    binary, sp = _binary(mask, label, spacing)
    if binary.ndim != 2:
        raise InputError(f"an area is measured on a 2D outline; this mask has {binary.ndim} dimensions")
    return float(binary.sum()) * float(np.prod(sp))


def measure_mask(mask: sitk.Image | np.ndarray, label: int | None = 1, spacing=None) -> dict[str, Any]:
    """Volume, longest in-plane diameter (+ its slice) and 3D maximum diameter of one mask.

    A 2D outline (an ultrasound B-mode image) has no volume: it gets its area in mm2 and its
    longest diameter, with volume, slice and 3D diameter left empty (NaN / None), rather than an
    area x 1 mm passed off as a volume.
    """
    diameter, where = longest_inplane_diameter_mm(mask, label, spacing)
    if _binary(mask, label, spacing)[0].ndim == 2:
        return {"volume_ml": np.nan, "area_mm2": area_mm2(mask, label, spacing), "longest_inplane_diameter_mm": diameter,
                "diameter_slice": None, "max_3d_diameter_mm": np.nan}
    return {"volume_ml": volume_ml(mask, label, spacing), "area_mm2": np.nan, "longest_inplane_diameter_mm": diameter,
            "diameter_slice": where, "max_3d_diameter_mm": max_3d_diameter_mm(mask, label, spacing)}


def recist_category(baseline_mm: float | Sequence[float], current_mm: float | Sequence[float],
                    nadir_mm: float | Sequence[float] | None = None) -> str:
    """RECIST 1.1 target-lesion response from (sums of) longest diameters in mm.

    CR: all target lesions gone (sum 0).  PD: >= 20 % increase over the nadir (the smallest sum so
    far, baseline included) AND >= 5 mm absolute increase.  PR: >= 30 % decrease from baseline.
    SD otherwise.  PD is checked before PR, as the standard requires.
    """
    baseline = float(np.sum(baseline_mm))
    current = float(np.sum(current_mm))
    if not np.isfinite(baseline) or baseline <= 0:
        raise InputError(f"RECIST needs a measurable baseline (sum of diameters > 0 mm), got {baseline}")
    if not np.isfinite(current) or current < 0:
        raise InputError(f"RECIST needs a current sum of diameters >= 0 mm, got {current}")
    nadir = baseline if nadir_mm is None else min(baseline, float(np.sum(nadir_mm)))
    eps = 1e-9
    if current <= eps:
        return "CR"
    if current - nadir >= 5.0 - eps and current >= 1.2 * nadir - eps:
        return "PD"
    if current <= 0.7 * baseline + eps:
        return "PR"
    return "SD"


def change_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add changes from baseline and the RECIST category to one lesion's time series.

    ``rows`` are dicts with ``timepoint`` and the keys of :func:`measure_mask`, in chronological
    order; the first row is the baseline.  Changes of a quantity the baseline lacks (the volume of
    a 2D outline, the area of a 3D mask) are NaN.  The nadir is the smallest diameter up to the previous row.
    """
    if not rows:
        return []
    base = rows[0]
    out, nadir = [], None
    for i, row in enumerate(rows):
        row = dict(row)
        d0, v0 = base["longest_inplane_diameter_mm"], base["volume_ml"]
        d, v = row["longest_inplane_diameter_mm"], row["volume_ml"]
        row["baseline_timepoint"] = base["timepoint"]
        row["diameter_change_pct"] = 100.0 * (d - d0) / d0 if d0 > 0 else np.nan
        row["volume_change_pct"] = 100.0 * (v - v0) / v0 if v0 > 0 else np.nan
        a0, a = base.get("area_mm2", np.nan), row.get("area_mm2", np.nan)
        row["area_change_pct"] = 100.0 * (a - a0) / a0 if a0 > 0 else np.nan  # 2D outlines
        if i == 0 or d0 <= 0:
            row["recist"] = "baseline" if i == 0 else "not evaluable"
        else:
            row["recist"] = recist_category(d0, d, nadir)
        nadir = d if nadir is None else min(nadir, d)
        out.append(row)
    return out
