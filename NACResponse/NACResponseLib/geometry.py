"""Voxel-grid geometry checks used by every stage that pairs an image with a mask.

A mismatch raises :class:`GeometryMismatchError` naming both files and the values that differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import GeometryMismatchError

DEFAULT_TOLERANCE = 1e-3  # relative for spacing, mm for origin, absolute for direction cosines


@dataclass(frozen=True)
class Geometry:
    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image) -> Geometry:
        """Geometry of a SimpleITK image."""
        return cls(tuple(image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()),
                   tuple(image.GetDirection()))

    @property
    def dimension(self) -> int:
        return len(self.size)


def geometry_differences(a: Geometry, b: Geometry, tolerance: float = DEFAULT_TOLERANCE) -> list[str]:
    """Human-readable list of the properties in which two grids differ (empty when they agree)."""
    if a.dimension != b.dimension:
        return [f"dimension {a.dimension}D vs {b.dimension}D"]
    out = []
    if a.size != b.size:
        out.append(f"size {a.size} vs {b.size}")
    spacing_a, spacing_b = np.asarray(a.spacing), np.asarray(b.spacing)
    if not np.allclose(spacing_a, spacing_b, rtol=tolerance, atol=0):
        out.append(f"spacing {_fmt(a.spacing)} vs {_fmt(b.spacing)}")
    # Origins may differ by a fraction of a voxel through rounding in converters.
    origin_tol = max(tolerance, tolerance * float(np.min(spacing_a)) * 100)
    if not np.allclose(a.origin, b.origin, rtol=0, atol=origin_tol):
        out.append(f"origin {_fmt(a.origin)} vs {_fmt(b.origin)}")
    if not np.allclose(a.direction, b.direction, rtol=0, atol=tolerance):
        out.append(f"direction {_fmt(a.direction)} vs {_fmt(b.direction)}")
    return out


def check_same_geometry(image_a, image_b, name_a: str, name_b: str, tolerance: float = DEFAULT_TOLERANCE) -> None:
    """Raise if two SimpleITK images (or Geometry objects) do not share one voxel grid."""
    ga = image_a if isinstance(image_a, Geometry) else Geometry.of(image_a)
    gb = image_b if isinstance(image_b, Geometry) else Geometry.of(image_b)
    diffs = geometry_differences(ga, gb, tolerance)
    if diffs:
        raise GeometryMismatchError(f"geometry mismatch between {name_a} and {name_b}: " + "; ".join(diffs))


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
