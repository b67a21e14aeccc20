"""PNG overlays of MC detections, clusters and extents for reports.

Kept MCs are green circles, rejected candidates small red crosses (optional), each cluster's convex
hull is outlined in yellow and its maximum extent drawn as a cyan line between its two end points
with its length (in mm, or in cm for the case report).  The image is shown with a breast-percentile
window (1-99.5 %) and, for speed and file size, block-averaged to at most ``max_pixels`` along its
longer side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_write_with
from .breast import block_mean


def _panel(ax, image: np.ndarray, spacing_mm: float, mcs: pd.DataFrame, clusters: pd.DataFrame, title: str,
           max_pixels: int, show_rejected: bool, crop_mm: tuple[float, float, float, float] | None,
           unit: str = "mm") -> None:
    factor = max(1, int(np.ceil(max(image.shape) / max_pixels)))
    shown = block_mean(image.astype(np.float32), factor)
    ds = spacing_mm * factor
    nz = shown[shown > np.percentile(shown, 30)]
    lo, hi = np.percentile(nz if nz.size else shown, [1, 99.5])
    extent = (0, shown.shape[1] * ds, shown.shape[0] * ds, 0)  # mm, from the image corner
    ax.imshow(shown, cmap="gray", vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
    if len(mcs):
        kept = mcs[mcs["kept"]] if "kept" in mcs else mcs
        ax.scatter(kept["x_mm"], kept["y_mm"], s=18, facecolors="none", edgecolors="lime", linewidths=0.7)
        if show_rejected and "kept" in mcs:
            rej = mcs[~mcs["kept"]]
            ax.scatter(rej["x_mm"], rej["y_mm"], s=6, marker="x", c="red", linewidths=0.5)
    for _, c in clusters.iterrows():
        if "kept" in mcs and "cluster_id" in mcs:
            pts = mcs[(mcs["cluster_id"] == c["cluster_id"]) & mcs["kept"]][["x_mm", "y_mm"]].to_numpy(float)
            if len(pts) >= 3:
                from scipy.spatial import ConvexHull, QhullError

                try:
                    v = ConvexHull(pts).vertices
                    ax.fill(pts[v, 0], pts[v, 1], fill=False, edgecolor="yellow", linewidth=0.8)
                except QhullError:
                    pass
        ax.plot([c["end1_x_mm"], c["end2_x_mm"]], [c["end1_y_mm"], c["end2_y_mm"]], color="cyan", linewidth=1.2)
        length = f"{c['extent_mm'] / 10:.2f} cm" if unit == "cm" else f"{c['extent_mm']:.1f} mm"
        ax.annotate(length, (c["end2_x_mm"], c["end2_y_mm"]), color="cyan", fontsize=8,
                    xytext=(3, 3), textcoords="offset points")
    if crop_mm is not None:
        x0, x1, y0, y1 = crop_mm
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (mm)", fontsize=8)
    ax.set_ylabel("y (mm)", fontsize=8)
    ax.tick_params(labelsize=7)


def cluster_crop(clusters: list[pd.DataFrame], shape_mm: tuple[float, float], margin_mm: float = 15.0):
    """A common (x0, x1, y0, y1) window around all clusters, or None when there are none."""
    xs, ys = [], []
    for c in clusters:
        for e in ("end1", "end2"):
            xs += c[f"{e}_x_mm"].tolist()
            ys += c[f"{e}_y_mm"].tolist()
    if not xs:
        return None
    return (max(min(xs) - margin_mm, 0), min(max(xs) + margin_mm, shape_mm[0]),
            max(min(ys) - margin_mm, 0), min(max(ys) + margin_mm, shape_mm[1]))


def render_overlay(path: str | Path, panels: list[dict], *, suptitle: str = "", max_pixels: int = 900,
                   show_rejected: bool = False, crop: bool = False, unit: str = "mm") -> Path:
    """Write a PNG with one panel per dict ``{image, spacing_mm, mcs, clusters, title}``.

    ``crop=True`` zooms all panels to a common window around their clusters; ``unit`` ("mm" or "cm")
    labels the extent lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = None
    if crop:
        p0 = panels[0]
        shape_mm = (p0["image"].shape[1] * p0["spacing_mm"], p0["image"].shape[0] * p0["spacing_mm"])
        window = cluster_crop([p["clusters"] for p in panels], shape_mm)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 5.0), squeeze=False)
    for ax, p in zip(axes[0], panels, strict=True):
        _panel(ax, p["image"], p["spacing_mm"], p["mcs"], p["clusters"], p.get("title", ""), max_pixels,
               show_rejected, window, unit)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return path
