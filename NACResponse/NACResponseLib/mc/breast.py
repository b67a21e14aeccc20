"""Breast region on a 2D mammogram: background, burned-in labels and (MLO) the pectoral muscle.

Why: MC detection must not look at the background noise, at bright text labels or at the edge of
the pectoral muscle, and its noise estimate must come from breast tissue only.

Rules (on a copy block-averaged to ~0.4 mm pixels, so the cost is small and pixel-size independent):

1. Threshold = Otsu's threshold of the smoothed image (values above the 99.5th percentile clipped
   so labels do not pull it up); the breast core is the largest connected component above it.
   Otsu's threshold lies halfway up the skin fall-off and would cut off the faint periphery, so the
   breast is grown from that core (hysteresis) into the connected pixels above a low threshold:
   background level + max(6 background SDs, 10 % of the step from background to Otsu's threshold)
   (level and SD: median and 1.4826 x MAD of the pixels below Otsu's threshold); holes are filled.
   Everything else above Otsu's threshold (labels, markers, film edges) is reported as ``labels``.
   1b. That mask is blurred by 0.5 mm and blocky at 0.4 mm, so its edge lies up to ~1 mm outside
   the skin line; the pixels within 1.9 mm of it are decided again at full resolution
   (:func:`refine_boundary`), so the detector's skin margin and noise band start at the skin line.
2. The chest wall is the side (left or right) holding the breast's intensity-weighted mass: the
   breast is thickest, and on MLO views carries the pectoral muscle, at the chest wall, so the
   weighted centroid lies in the chest-wall half of the breast's bounding box.  Edge contact is not
   used: padded images touch no edge, and large breasts touch both.
3. MLO: the pectoral muscle is searched as a triangle in the top chest-wall corner bounded by a
   straight line ``c/w + r/h = 1``; the line maximising the mean intensity difference between a
   3 mm band inside and a 3 mm band outside it wins, and is kept when that difference exceeds
   6 % of the breast's median intensity.  The muscle is removed from the breast mask.

Assumes a for-presentation image (dense tissue bright, background dark); DICOM MONOCHROME1 images
are inverted by the reader before they get here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError

WORK_PIXEL_MM = 0.4


@dataclass
class BreastRegion:
    mask: np.ndarray  # bool (rows, cols): breast tissue, pectoral muscle excluded
    pectoral: np.ndarray  # bool (rows, cols)
    labels: np.ndarray  # bool (rows, cols): bright objects outside the breast (labels, markers)
    chest_wall: str  # "left" or "right" image edge
    threshold: float
    spacing_mm: float
    pectoral_line: tuple[float, float] | None = None  # (w_mm, h_mm) of the triangle, chest-wall frame

    @property
    def area_mm2(self) -> float:
        return float(self.mask.sum()) * self.spacing_mm**2

    def bbox(self) -> tuple[slice, slice]:
        """Row and column slices of the breast's bounding box."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        cols = np.flatnonzero(self.mask.any(axis=0))
        if rows.size == 0:
            return slice(0, 0), slice(0, 0)
        return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Average over ``factor x factor`` blocks (edges padded by replication)."""
    if factor <= 1:
        return image.astype(np.float32, copy=False)
    rows, cols = image.shape
    pr, pc = (-rows) % factor, (-cols) % factor
    padded = np.pad(image, ((0, pr), (0, pc)), mode="edge") if (pr or pc) else image
    r2, c2 = padded.shape[0] // factor, padded.shape[1] // factor
    return padded.reshape(r2, factor, c2, factor).mean(axis=(1, 3), dtype=np.float32)


def upsample_mask(small: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour inverse of :func:`block_mean` for masks."""
    if factor <= 1:
        return small[: shape[0], : shape[1]]
    # block_mean pads the image to whole blocks, so factor x small always covers ``shape``.
    return np.repeat(np.repeat(small, factor, axis=0)[: shape[0]], factor, axis=1)[:, : shape[1]]


def segment_breast(image: np.ndarray, spacing_mm: float, *, view: str | None = None,
                   name: str = "image", min_area_mm2: float = 200.0) -> BreastRegion:
    """Breast mask (pectoral excluded on MLO), labels and chest-wall side; see the module rules."""
    s = float(spacing_mm)
    factor = max(1, int(round(WORK_PIXEL_MM / s)))
    ws = s * factor  # working pixel size, mm
    small = ndi.gaussian_filter(block_mean(image, factor), 0.5 / ws)
    hi = float(np.percentile(small, 99.5))
    lo = float(small.min())
    if hi - lo <= 1e-6 * max(abs(hi), 1.0):
        raise InputError(f"{name}: image is constant ({hi:g}); not a mammogram")
    t = _otsu(np.clip(small, lo, hi).ravel())
    above = small > t
    lab, n = ndi.label(above)
    if n == 0:
        raise InputError(f"{name}: no breast tissue found (nothing above the background threshold {t:g})")
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    core = lab == int(np.argmax(sizes))
    below = small[~above]
    bg = float(np.median(below))
    bg_sd = 1.4826 * float(np.median(np.abs(below - bg)))
    t_low = bg + max(6.0 * bg_sd, 0.1 * (t - bg))
    grown, _ = ndi.label(small > t_low)
    breast = ndi.binary_fill_holes(np.isin(grown, np.unique(grown[core])) & (grown > 0))
    breast = ndi.binary_opening(breast, iterations=1)
    labels_small = above & ~breast
    area = float(breast.sum()) * ws * ws
    if area < min_area_mm2:
        raise InputError(f"{name}: empty breast (breast region {area:.0f} mm^2 < {min_area_mm2:g} mm^2)")
    chest_wall = chest_wall_side(small, breast, bg)

    pectoral_small = np.zeros_like(breast)
    line = None
    if view is not None and str(view).upper() == "MLO":
        pectoral_small, line = _find_pectoral(small, breast, ws, chest_wall)
    shape = image.shape
    full = refine_boundary(image, breast, factor, s, bg, t)
    pectoral = upsample_mask(pectoral_small, factor, shape) & full
    region = BreastRegion(
        mask=full & ~pectoral,
        pectoral=pectoral,
        labels=upsample_mask(labels_small, factor, shape) & ~full,
        chest_wall=chest_wall,
        threshold=t,
        spacing_mm=s,
        pectoral_line=line,
    )
    return region


def refine_boundary(image: np.ndarray, small: np.ndarray, factor: int, spacing_mm: float, background: float,
                    otsu: float) -> np.ndarray:
    """The breast mask at full resolution (module docstring, rule 1b), from ``small``, the mask at
    the working resolution (``factor`` x the pixel size).

    That mask is blurred by 0.5 mm and blocky at its pixel size, so its edge lies up to about 1 mm
    outside the skin line, and the detector measures its skin margin and noise band from that edge.
    Within one working pixel + 1.5 mm of it, each pixel is decided again on the image smoothed by
    0.1 mm, against the low threshold of rule 1 with the background SD of that copy: background +
    max(6 SDs, 10 % of the step to Otsu's threshold).  Deeper pixels stay in, farther ones out; the
    part connected to the deep interior is kept, its holes filled."""
    s = float(spacing_mm)
    shape = image.shape
    coarse = upsample_mask(small, factor, shape)
    band = int(np.ceil((factor * s + 1.5) / (factor * s)))  # in working pixels
    interior_small = ndi.minimum_filter(small, size=2 * band + 1, mode="nearest")
    if not interior_small.any():
        return coarse  # a breast thinner than the band: nothing deep enough to anchor the refinement
    interior = upsample_mask(interior_small, factor, shape)
    reach = upsample_mask(ndi.maximum_filter(small, size=2 * band + 1, mode="constant", cval=False), factor, shape)
    rows, cols = np.flatnonzero(reach.any(axis=1)), np.flatnonzero(reach.any(axis=0))
    box = (slice(max(rows[0] - 2, 0), rows[-1] + 3), slice(max(cols[0] - 2, 0), cols[-1] + 3))
    smooth = ndi.gaussian_filter(image[box].astype(np.float32, copy=False), 0.1 / s, truncate=3.0)
    near, deep = reach[box], interior[box]
    st = (slice(None, None, 2), slice(None, None, 2))  # every 4th pixel is plenty for the SD
    air = smooth[st][near[st] & ~coarse[box][st] & (smooth[st] < otsu)]
    sd = 1.4826 * float(np.median(np.abs(air - np.median(air)))) if air.size >= 50 else 0.0
    keep = deep | (near & (smooth > background + max(6.0 * sd, 0.1 * (otsu - background))))
    lab, n = ndi.label(keep)
    anchored = np.zeros(n + 1, dtype=bool)
    anchored[lab[deep]] = True
    anchored[0] = False
    keep = fill_holes(anchored[lab])
    out = np.zeros_like(coarse)
    out[box] = keep
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill holes: background components that do not touch the array border (one labelling pass;
    faster than iterative ``binary_fill_holes`` on large images)."""
    bg, n = ndi.label(~mask)
    border = np.unique(np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]]))
    hole = np.ones(n + 1, dtype=bool)
    hole[border] = False
    hole[0] = False
    return mask | hole[bg]


def chest_wall_side(image: np.ndarray, breast: np.ndarray, background: float = 0.0) -> str:
    """``"left"`` or ``"right"``: the half of the breast's bounding box holding more of its
    intensity-weighted mass (module docstring, rule 2)."""
    cols = np.flatnonzero(breast.any(axis=0))
    weight = (np.where(breast, np.maximum(image - background, 0.0), 0.0)).sum(axis=0, dtype=np.float64)
    centre = 0.5 * (cols[0] + cols[-1])
    centroid = float((weight * np.arange(weight.size)).sum() / max(weight.sum(), 1e-12))
    return "left" if centroid <= centre else "right"


def _find_pectoral(small: np.ndarray, breast: np.ndarray, ws: float, chest_wall: str):
    """Best straight pectoral boundary in the top chest-wall corner (see module docstring, rule 3)."""
    img = small if chest_wall == "left" else small[:, ::-1]
    mask = breast if chest_wall == "left" else breast[:, ::-1]
    rows, cols = img.shape
    rr = (np.arange(rows, dtype=np.float32)[:, None] + 0.5) * ws
    cc = (np.arange(cols, dtype=np.float32)[None, :] + 0.5) * ws
    height, width = rows * ws, cols * ws
    best, best_wh = 0.0, None
    band = 3.0
    med = float(np.median(img[mask]))
    for w in np.linspace(0.1, 0.6, 16) * width:
        for h in np.linspace(0.2, 0.9, 16) * height:
            norm = np.hypot(1.0 / w, 1.0 / h)
            dist = (1.0 - cc / w - rr / h) / norm  # mm, positive inside the triangle
            inner = mask & (dist > 0) & (dist <= band)
            outer = mask & (dist < 0) & (dist >= -band)
            if inner.sum() < 20 or outer.sum() < 20:
                continue
            diff = float(img[inner].mean() - img[outer].mean())
            if diff > best:
                best, best_wh = diff, (float(w), float(h))
    if best_wh is None or best < 0.06 * med:
        return np.zeros_like(breast), None
    w, h = best_wh
    tri = mask & ((cc / w + rr / h) < 1.0)
    if chest_wall == "right":
        tri = tri[:, ::-1]
    return tri, best_wh
