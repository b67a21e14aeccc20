"""Figures of the case report: one image slice per timepoint with the delineations and the RECIST
line drawn on it, and Grad-CAM maps over their image.

Drawn in millimetres in the image's own geometry: pixel (i, j) covers [j*sx, (j+1)*sx] x
[i*sy, (i+1)*sy] mm from the image corner, so the aspect follows the spacing and a contour sits
where the viewer shows it.  The slice is the one the core measured the RECIST diameter on
(``tumour_measurements.diameter_slice``); the RECIST line is the core's own end points
(``segmentation.measurements.longest_inplane_diameter_ends``, as the Slicer viewer draws it) put
in the same frame.  Grad-CAM maps share their image's grid (``deep.gradcam.write_map``).  Figures
come back as PNG bytes so the page can embed them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Contour colours, one per delineation (reader/method) in the order given.
COLOURS = ("lime", "magenta", "cyan", "orange", "dodgerblue", "red")  # yellow: the RECIST line
MARGIN_MM = 15.0
DPI = 100


@dataclass
class Plane:
    """One 2D slice of an image in (row = y, column = x) order, with its pixel spacing in mm."""

    pixels: np.ndarray
    spacing_xy: tuple[float, float]
    title: str

    @property
    def extent(self) -> tuple[float, float, float, float]:
        ny, nx = self.pixels.shape
        return (0.0, nx * self.spacing_xy[0], ny * self.spacing_xy[1], 0.0)

    def centres_mm(self) -> tuple[np.ndarray, np.ndarray]:
        ny, nx = self.pixels.shape
        return (np.arange(nx) + 0.5) * self.spacing_xy[0], (np.arange(ny) + 0.5) * self.spacing_xy[1]


@dataclass
class RecistLine:
    """The longest in-plane diameter of one delineation, in a panel's frame: (x, y) mm from the
    image corner (x along the column index, y along the row index), on slice ``slice``."""

    label: str
    length_mm: float
    slice: int | None
    start_mm: tuple[float, float]
    end_mm: tuple[float, float]


def recist_line(mask, label: int, name: str) -> RecistLine | None:
    """The RECIST line of ``mask`` (voxels == ``label``) by the core's rule; None when it is empty.

    The core gives the ends as continuous voxel indices (z, y, x) of outline corners, voxel centres
    at integers; a panel puts voxel centre c at (c + 0.5) * spacing mm, so a corner c - 0.5 lies on
    the pixel edge c * spacing.
    """
    from ..segmentation.measurements import longest_inplane_diameter_ends

    length, where, start, end = longest_inplane_diameter_ends(mask, label)
    if where is None:
        return None
    sx, sy = (float(v) for v in mask.GetSpacing()[:2])

    def mm(zyx) -> tuple[float, float]:
        return (float(zyx[2]) + 0.5) * sx, (float(zyx[1]) + 0.5) * sy

    return RecistLine(name, float(length), where if mask.GetDimension() == 3 else None, mm(start), mm(end))


def image_plane(image, index: int | None, title: str) -> Plane:
    """Slice ``index`` along the image's third axis (2D images: the image itself)."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    sp = image.GetSpacing()
    if arr.ndim == 3:
        arr = arr[int(index if index is not None else arr.shape[0] // 2)]
    return Plane(arr, (float(sp[0]), float(sp[1])), title)


def mask_plane(mask, index: int | None) -> np.ndarray:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(mask)
    return (arr[int(index)] if arr.ndim == 3 and index is not None else arr) != 0


def _window(pixels: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(pixels, [1, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1)


def _crop(ax, plane: Plane, masks: Sequence[np.ndarray]) -> None:
    """Zoom to the delineations plus a margin (whole image without any)."""
    xs, ys = plane.centres_mm()
    hits = [np.argwhere(m) for m in masks if m is not None and m.any()]
    if not hits:
        return
    idx = np.concatenate(hits)
    x0, x1 = xs[idx[:, 1].min()] - MARGIN_MM, xs[idx[:, 1].max()] + MARGIN_MM
    y0, y1 = ys[idx[:, 0].min()] - MARGIN_MM, ys[idx[:, 0].max()] + MARGIN_MM
    ext = plane.extent
    ax.set_xlim(max(x0, 0.0), min(x1, ext[1]))
    ax.set_ylim(min(y1, ext[2]), max(y0, 0.0))


def _draw(ax, plane: Plane, outlines: Sequence[tuple[str, np.ndarray]], heat: np.ndarray | None = None,
          line: RecistLine | None = None) -> None:
    lo, hi = _window(plane.pixels)
    ax.imshow(plane.pixels, cmap="gray", vmin=lo, vmax=hi, extent=plane.extent, interpolation="nearest")
    if heat is not None:
        ax.imshow(np.ma.masked_less_equal(heat, 0), cmap="jet", alpha=0.45, extent=plane.extent,
                  vmin=0.0, vmax=float(heat.max()) or 1.0, interpolation="bilinear")
    xs, ys = plane.centres_mm()
    handles = []
    for (label, m), colour in zip(outlines, COLOURS * 4):
        if m is not None and m.any():
            ax.contour(xs, ys, m.astype(float), levels=[0.5], colors=colour, linewidths=1.0)
            handles.append((label, colour))
    if line is not None:
        from matplotlib import patheffects

        (x0, y0), (x1, y1) = line.start_mm, line.end_mm
        ax.plot([x0, x1], [y0, y1], color="yellow", linewidth=1.2, marker="+", markersize=7)
        ax.annotate(f"{line.length_mm:.1f} mm", ((x0 + x1) / 2, (y0 + y1) / 2), color="yellow", fontsize=8,
                    xytext=(4, 4), textcoords="offset points",
                    path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])
        handles.append((f"RECIST {line.label}: {line.length_mm:.1f} mm", "yellow"))
    if handles:
        from matplotlib.lines import Line2D

        ax.legend([Line2D([], [], color=c) for _, c in handles], [n for n, _ in handles], fontsize=7,
                  loc="lower right", framealpha=0.6)
    _crop(ax, plane, [m for _, m in outlines])
    ax.set_title(plane.title, fontsize=9)
    ax.set_xlabel("x (mm)", fontsize=8)
    ax.set_ylabel("y (mm)", fontsize=8)
    ax.tick_params(labelsize=7)


def to_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _figure(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, n, figsize=(3.6 * n, 3.9), squeeze=False)


def timepoint_figure(panels: Sequence[tuple[Plane, Sequence[tuple[str, np.ndarray]], RecistLine | None]],
                     suptitle: str = "") -> bytes:
    """One panel per timepoint: the plane with its delineations (label, mask plane) outlined and
    the RECIST line (None: not drawn)."""
    fig, axes = _figure(len(panels))
    for ax, (plane, outlines, line) in zip(axes[0], panels, strict=True):
        _draw(ax, plane, outlines, line=line)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def gradcam_figure(panels: Sequence[tuple[Plane, np.ndarray, np.ndarray | None]], suptitle: str = "") -> bytes:
    """One panel per map: the plane, the map (0 outside its window) and the delineation."""
    fig, axes = _figure(len(panels))
    for ax, (plane, heat, outline) in zip(axes[0], panels, strict=True):
        _draw(ax, plane, [("delineation", outline)] if outline is not None else [], heat=heat)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def figure_rows(panels: Sequence, per_row: int = 4) -> list[list]:
    """Panels split into figures of at most ``per_row`` (a page width)."""
    return [list(panels[i:i + per_row]) for i in range(0, len(panels), per_row)]


def map_slice(volume: np.ndarray) -> int | None:
    """The slice (third axis) holding most of a map's mass; None for 2D maps."""
    if volume.ndim == 2:
        return None
    mass = np.clip(volume, 0, None).reshape(volume.shape[0], -1).sum(axis=1)
    return int(np.argmax(mass))
