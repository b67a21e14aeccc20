"""Classical microcalcification detector in millimetre units (no learned weights).

Why this design: MCs are bright spots 0.1-1 mm across on a textured background whose noise grows
with the signal.  A multi-scale difference of Gaussians (DoG) with scales in mm responds to such
spots whatever the pixel size; dividing each scale's response by a robust local noise estimate
makes one threshold (in noise standard deviations) valid across the breast and across devices.

Steps (all vectorised with scipy.ndimage, on the breast's bounding box only):

1. Breast region (:mod:`.breast`); seeds must lie inside it, ``skin_margin_mm`` away from the skin
   line, outside the pectoral muscle and labels.
2. Gaussians G_k at ``sigmas_mm`` and a curvature-preserving background
   B = 2 G(b) - G(sqrt(2) b), b = ``background_mm``: for any locally quadratic background
   (G_s f = f + s^2/2 Laplacian f) B reproduces it exactly, so the fibroglandular texture's curvature
   does not leak into the response, while a spot much smaller than b is still removed from B.
   DoG_k = G_k - B (a wide band-pass, closer to the matched filter of a small spot than narrow
   G_k - G_{k+1} bands).
3. Noise of each DoG_k: 1.4826 x median |DoG_k| over breast pixels in ``noise_block_mm`` blocks
   (robust to the MCs themselves), one block every half block (four half-shifted grids), smoothed
   across blocks and interpolated linearly between block centres; Z_k = DoG_k / noise_k;
   Z = max_k Z_k.  The blocks sit on a grid fixed to the image (not to the breast's bounding box),
   so a change of the breast mask does not move them.
   The outer ``noise_skin_mm`` of the breast (Euclidean depth from the full-resolution skin line,
   :func:`.breast.refine_boundary`) is left out of the tiles: the skin line's step edge is
   structure, not noise, and would raise the estimate of every tile it crosses (hiding MCs a few
   mm from the skin).
4. Seeds: local maxima of Z within ``nms_radius_mm`` with Z > ``threshold``; ``score`` = Z.  One
   seed per blob: seeds of one object closer than ``max_diameter_mm`` whose contrast does not dip
   below ``merge_saddle`` x the weaker one's between them are merged into the strongest (noise
   splits one coarse-pixel blob among several maxima, and each would get a share of its area);
   at pixels >= ``coarse_pixel_mm`` also seeds up to ``coarse_merge_mm`` apart on one coarse blob
   (:func:`_merge_coarse_blobs`).
5. Per seed, its object = connected component of Z > ``seg_threshold`` deeper than
   ``object_skin_mm`` (the skin edge's own response is no object: around a breast that touches no
   image edge it would close a ring, which the ``coarse_or_rim`` rule fills into one large
   object).  Local contrast C = G_0 - B (image units); size = area where C >= half the object's peak C (FWHM area,
   divided among the blobs sharing the object), equivalent diameter; shape = second moments of that
   area (length = 4 sqrt(major eigenvalue), elongation = sqrt(major/minor)).
   ``cnr`` = peak C / per-pixel noise (robust std of the image minus its 4-neighbour mean / sqrt(1.25)).
   ``background`` = B at the seed; ``line_score`` (:func:`_line_score`): how strongly the seed lies
   on a long line.

Exclusion rules implemented (rejected detections are kept in the table with ``kept=False`` and a
``reason``):

- ``large``: FWHM diameter > ``max_diameter_mm`` (1 mm): a coarse/benign calcification;
- ``coarse_or_rim``: the seed lies in (or within ``large_margin_mm`` of) a *large object*: a part
  of the mask Z > ``seg_threshold``, holes filled (rim / eggshell calcifications and the edge ring
  that a solid coarse calcification leaves in the band-pass), that is about
  ``large_min_diameter_mm`` thick (survives a square opening of side 0.75 x that); vessels and MCs
  thinner than that do not survive; the many seeds on the edge of such an object go with it;
  also any object longer than ``linear_length_mm`` that is not elongated (open rims, arcs: an MC's
  half-maximum region is never that long);
- ``linear``: the object is longer than ``linear_length_mm`` with elongation > ``max_elongation``
  (vascular tracks, fibres, the pectoral edge), or ``line_score`` > ``line_threshold`` (the seed is
  on a long line: also scanner lines broken into fragments each shorter than ``linear_length_mm``);
- ``small``: FWHM diameter < ``min_diameter_mm`` (fires only at pixels finer than ~0.09 mm: a
  detected spot is at least one pixel), or a single-pixel spike (:func:`_single_pixel`: its four
  neighbours carry no contrast) at pixels finer than ``coarse_pixel_mm``;
- ``classifier``: with ``classifier`` set, the learned probability (:mod:`.classifier`) is below the
  model's threshold.

Tram-track (paired parallel) vascular calcifications made of separate round dots and
lucent-centred (benign) calcifications smaller than 1 mm are *not* excluded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import InputError
from .breast import BreastRegion, fill_holes, segment_breast

DETECTION_COLUMNS = [
    "x_mm", "y_mm", "row", "col", "score", "scale_mm", "diameter_mm", "area_mm2", "contrast",
    "noise", "cnr", "length_mm", "elongation", "background", "line_score", "kept", "reason", "source",
]


@dataclass(frozen=True)
class DetectorParams:
    """Detector settings; every length in mm, thresholds in noise standard deviations."""

    sigmas_mm: tuple[float, ...] = (0.05, 0.09, 0.16, 0.28)
    background_mm: float = 0.4
    threshold: float = 4.75  # README, MC validation: the operating point on the phantoms
    seg_threshold: float = 2.5
    nms_radius_mm: float = 0.25
    noise_block_mm: float = 5.0
    skin_margin_mm: float = 1.5  # the breast mask reaches the skin line, whose edge the band-pass sees
    noise_skin_mm: float = 0.7  # the noise tiles leave out this outer band of the breast (its skin edge)
    object_skin_mm: float = 1.0  # no object mask in this outer band (the skin edge's response is no object)
    min_diameter_mm: float = 0.1
    spike_neighbour_sd: float = 1.0  # single-pixel spike rule (:func:`_single_pixel`); 0 = off
    coarse_pixel_mm: float = 0.15  # from this pixel size: no spike rule, coarse-blob merge instead
    coarse_merge_mm: float = 1.8  # coarse-blob merge (:func:`_merge_coarse_blobs`); 0 = off
    max_diameter_mm: float = 1.0
    linear_length_mm: float = 1.5
    max_elongation: float = 2.5
    large_min_diameter_mm: float = 1.2
    large_margin_mm: float = 0.5
    merge_saddle: float = 0.6
    line_inner_mm: float = 1.0
    line_outer_mm: float = 5.0
    line_threshold: float = 1.0
    classifier: str = ""  # folder of a saved candidate classifier (:mod:`.classifier`); "" = none
    classifier_sha256: str = ""  # its expected SHA-256, checked on load

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DetectionResult:
    detections: pd.DataFrame  # every candidate above threshold; ``kept`` says which are MCs
    breast: BreastRegion
    spacing_mm: float
    shape: tuple[int, int]
    params: DetectorParams = field(default_factory=DetectorParams)

    @property
    def kept(self) -> pd.DataFrame:
        return self.detections[self.detections["kept"]].reset_index(drop=True)


def empty_detections() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(DETECTION_COLUMNS, [
        float, float, int, int, float, float, float, float, float, float, float, float, float, float, float,
        bool, str, str,
    ], strict=True)})


def check_mammogram_array(image: np.ndarray, spacing_mm, name: str = "image") -> tuple[np.ndarray, float]:
    """Validate a 2D mammogram array and its pixel size; return (float32 2D array, spacing in mm).

    Rejects: RGB / vector images, 3D volumes (a single-slice 3D array is squeezed), constant images,
    non-finite values, missing or implausible pixel sizes (mammograms use 0.02-0.3 mm pixels).
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and 1 in arr.shape and arr.shape[-1] not in (3, 4):
        arr = arr.reshape([d for d in arr.shape if d != 1] or [1])
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise InputError(f"{name}: colour (RGB/RGBA) image; a mammogram has one grey value per pixel")
    if arr.ndim != 2:
        raise InputError(f"{name}: {arr.ndim}D image of shape {arr.shape}; a mammogram is a 2D image")
    if min(arr.shape) < 16:
        raise InputError(f"{name}: image of shape {arr.shape} is too small to be a mammogram")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"{name}: pixel type {arr.dtype} is not a real grey value")
    if spacing_mm is None:
        raise InputError(f"{name}: pixel spacing unknown; give it (e.g. --spacing-mm 0.07 or the manifest's "
                         "pixel_spacing_mm)")
    sp = np.atleast_1d(np.asarray(spacing_mm, dtype=float))
    if sp.size > 2 or np.any(~np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"{name}: invalid pixel spacing {spacing_mm!r}")
    if sp.size == 2 and abs(sp[0] - sp[1]) > 0.01 * sp.max():
        raise InputError(f"{name}: anisotropic pixels {tuple(sp)} mm; mammograms have square pixels")
    s = float(sp.mean())
    if not 0.02 <= s <= 0.3:
        raise InputError(f"{name}: pixel spacing {s:g} mm is outside the mammography range 0.02-0.3 mm "
                         "(not a mammogram, or the file lacks its spacing: give it explicitly)")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: image contains NaN or infinite values")
    if float(arr.max()) == float(arr.min()):
        raise InputError(f"{name}: image is constant ({float(arr.max()):g}); not a mammogram")
    return arr, s


def _tile_medians(a: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and count of the finite values of ``a`` per ``b x b`` tile (the last tiles padded)."""
    pr, pc = (-a.shape[0]) % b, (-a.shape[1]) % b
    if pr or pc:
        a = np.pad(a, ((0, pr), (0, pc)), constant_values=np.inf)
    nr, nc = a.shape[0] // b, a.shape[1] // b
    tiles = np.sort(a.reshape(nr, b, nc, b).transpose(0, 2, 1, 3).reshape(nr, nc, b * b), axis=2)
    count = np.isfinite(tiles).sum(axis=2)
    k = np.maximum((count - 1) // 2, 0)
    return np.take_along_axis(tiles, k[..., None], axis=2)[..., 0], count


def _block_robust_std(values: np.ndarray, valid: np.ndarray, block: int, *, strided: bool = False,
                      overlap: bool = False) -> np.ndarray:
    """1.4826 x median |values| per ``block x block`` tile over ``valid`` pixels, from about 16 x 16
    samples per tile; tiles with too few valid samples take their nearest valid neighbour's value;
    the grid is then smoothed (Gaussian, 0.7 tile).  ``strided=True``: ``values`` and ``valid`` are
    already sampled every ``block // 16`` pixels (``block`` a multiple of that stride).

    ``overlap=True``: tiles every half tile (four grids, shifted by half a tile, interleaved; cell
    ``j`` centred ``j x block / 2`` pixels from the origin): each pixel's estimate then rests on four
    overlapping tiles rather than on whichever tile it falls in."""
    stride = max(1, block // 16)
    v = values if strided else values[::stride, ::stride]
    m = valid[::stride, ::stride] if valid.shape != v.shape else valid
    b = max(block // stride, 2)
    a = np.where(m, np.abs(v), np.inf).astype(np.float32)
    if overlap:
        h = b // 2
        parts = {(dr, dc): _tile_medians(np.pad(a, ((dr, 0), (dc, 0)), constant_values=np.inf), b)
                 for dr in (h, 0) for dc in (h, 0)}
        nr = parts[(h, 0)][0].shape[0] + parts[(0, 0)][0].shape[0]
        nc = parts[(0, h)][0].shape[1] + parts[(0, 0)][0].shape[1]
        med, count = np.empty((nr, nc), dtype=np.float32), np.empty((nr, nc), dtype=np.int64)
        for (dr, dc), (pm, pn) in parts.items():
            sl = (slice(0 if dr else 1, None, 2), slice(0 if dc else 1, None, 2))
            med[sl], count[sl] = pm, pn
    else:
        med, count = _tile_medians(a, b)
    med = med * 1.4826
    ok = (count >= 0.25 * b * b) & np.isfinite(med) & (med > 0)
    if not ok.any():
        ok = (count > 0) & np.isfinite(med) & (med > 0)
        if not ok.any():
            return np.ones(med.shape, dtype=np.float32)
    idx = ndi.distance_transform_edt(~ok, return_distances=False, return_indices=True)
    med = med[idx[0], idx[1]]
    return ndi.gaussian_filter(med, 1.4 if overlap else 0.7, mode="nearest").astype(np.float32)


def _tile_to_pixels(grid: np.ndarray, block: int, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel values of a half-tile grid (``_block_robust_std(overlap=True)``: cell ``j`` centred
    ``j x block / 2`` pixels from the origin), linearly interpolated between cell centres (a
    continuous noise map: an MC near a tile border is not judged by whichever tile it falls in)."""
    rows = _linear_weights(shape[0], grid.shape[0], block / 2, 0.0)
    cols = _linear_weights(shape[1], grid.shape[1], block / 2, 0.0)
    return (rows @ grid.astype(np.float32) @ cols.T).astype(np.float32, copy=False)


def _linear_weights(n: int, n_cells: int, spacing: float, origin: float) -> np.ndarray:
    """(n, n_cells) weights of linear interpolation between cell centres ``origin + j spacing``
    (pixel units; pixel i centred at i + 0.5), constant beyond the outer ones."""
    u = np.clip((np.arange(n) + 0.5 - origin) / spacing, 0.0, n_cells - 1.0)
    lo = np.minimum(np.floor(u).astype(int), max(n_cells - 2, 0))
    w = np.zeros((n, n_cells), dtype=np.float32)
    frac = (u - lo) if n_cells > 1 else np.zeros(n)
    w[np.arange(n), lo] = 1.0 - frac
    if n_cells > 1:
        w[np.arange(n), lo + 1] += frac
    return w


def pixel_noise_grid(image: np.ndarray, valid: np.ndarray, block: int) -> np.ndarray:
    """Per-pixel noise std per ``block`` tile: robust std of image minus its 4-neighbour mean,
    / sqrt(1.25), evaluated only on the sampled pixels the tile medians use."""
    st = max(1, block // 16)
    c = image[1:-1:st, 1:-1:st]
    resid = c - 0.25 * (image[:-2:st, 1:-1:st] + image[2::st, 1:-1:st] + image[1:-1:st, :-2:st]
                        + image[1:-1:st, 2::st])
    return _block_robust_std(resid, valid[1:-1:st, 1:-1:st], block, strided=True) / np.sqrt(1.25)


def _large_objects(obj_mask: np.ndarray, s: float, p: DetectorParams) -> np.ndarray:
    """Rule ``coarse_or_rim``: the parts of the hole-filled object mask at least
    ``large_min_diameter_mm`` thick (a square opening: separable min then max filter), dilated by
    ``large_margin_mm``.  Thin structures (vessels, MCs below that size) do not survive the opening,
    and a coarse calcification touching a vessel is still found."""
    filled = fill_holes(obj_mask)
    # A square of side 0.75 d fits in a disc of diameter ~1.06 d (and in bands >= 0.75-1.06 d wide).
    k = max(3, int(round(0.75 * p.large_min_diameter_mm / s)) | 1)
    thick = ndi.maximum_filter(ndi.minimum_filter(filled, size=k), size=k)
    if not thick.any():
        return thick
    return ndi.maximum_filter(thick, size=2 * max(1, int(round(p.large_margin_mm / s))) + 1)


def _moments_shape(rr: np.ndarray, cc: np.ndarray, labels: np.ndarray, n: int, s: float):
    """Length (4 sqrt of the major second moment, mm) and elongation sqrt(major/minor) per label
    0..n, from the labelled pixels' coordinates (sparse: cost proportional to the object pixels)."""
    rr, cc = rr.astype(np.float64), cc.astype(np.float64)
    cnt = np.maximum(np.bincount(labels, minlength=n + 1), 1e-9)

    def mean(w):
        return np.bincount(labels, weights=w, minlength=n + 1) / cnt

    mr, mc = mean(rr), mean(cc)
    vrr = mean(rr * rr) - mr * mr + 1.0 / 12
    vcc = mean(cc * cc) - mc * mc + 1.0 / 12
    vrc = mean(rr * cc) - mr * mc
    tr, det = vrr + vcc, vrr * vcc - vrc * vrc
    disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0))
    lam1, lam2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 1e-6)
    return 4 * np.sqrt(lam1) * s, np.sqrt(lam1 / lam2)


def _merge_seeds(sr: np.ndarray, sc: np.ndarray, zmax: np.ndarray, contrast: np.ndarray, obj_lab: np.ndarray,
                 s: float, p: DetectorParams) -> tuple[np.ndarray, np.ndarray]:
    """One seed per blob: seeds of one object less than ``max_diameter_mm`` apart whose contrast
    never dips below ``merge_saddle`` x the weaker one's on the segment between them are one spot
    (noise makes several maxima on one coarse-pixel blob); the strongest seed of each group stays."""
    n = sr.size
    if n < 2:
        return sr, sc
    pairs = cKDTree(np.c_[sr, sc] * s).query_pairs(p.max_diameter_mm, output_type="ndarray")
    if len(pairs) == 0:
        return sr, sc
    pairs = pairs[obj_lab[sr[pairs[:, 0]], sc[pairs[:, 0]]] == obj_lab[sr[pairs[:, 1]], sc[pairs[:, 1]]]]
    if len(pairs) == 0:
        return sr, sc
    t = np.linspace(0.0, 1.0, 11)[None, :]
    a, b = pairs[:, 0], pairs[:, 1]
    rr = sr[a, None] + (sr[b] - sr[a])[:, None] * t
    cc = sc[a, None] + (sc[b] - sc[a])[:, None] * t
    along = ndi.map_coordinates(contrast, [rr.ravel(), cc.ravel()], order=1).reshape(rr.shape)
    weaker = np.minimum(contrast[sr[a], sc[a]], contrast[sr[b], sc[b]])
    same = pairs[along.min(axis=1) >= p.merge_saddle * weaker]
    if len(same) == 0:
        return sr, sc
    graph = coo_matrix((np.ones(len(same)), (same[:, 0], same[:, 1])), shape=(n, n))
    _, group = connected_components(graph, directed=False)
    order = np.lexsort((-zmax[sr, sc], group))  # per group, strongest first
    first = order[np.r_[True, np.diff(group[order]) != 0]]
    first.sort()
    return sr[first], sc[first]


def _single_pixel(sub: np.ndarray, g_bg: np.ndarray, sr: np.ndarray, sc: np.ndarray, pix_noise: np.ndarray,
                  s: float, p: DetectorParams) -> np.ndarray:
    """Per seed: a single-pixel spike, whose 4 neighbours carry no contrast (their mean contrast
    over the background is below ``spike_neighbour_sd`` SDs of a 4-pixel mean, pixel noise / 2).
    An MC wider than a pixel spills into a neighbour; white noise does not.  Used only at pixels
    finer than ``coarse_pixel_mm``: at coarser pixels a 0.2-0.3 mm MC often lies within one pixel
    and looks the same as a spike (README, rule ``small``)."""
    if p.spike_neighbour_sd <= 0 or s >= p.coarse_pixel_mm:
        return np.zeros(sr.size, dtype=bool)
    rows, cols = sub.shape
    total = np.zeros(sr.size, dtype=np.float64)
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = np.clip(sr + dr, 0, rows - 1), np.clip(sc + dc, 0, cols - 1)
        total += sub[r, c] - g_bg[r, c]
    return total / 4 < p.spike_neighbour_sd * pix_noise / 2


def _merge_coarse_blobs(sub: np.ndarray, sr: np.ndarray, sc: np.ndarray, zmax: np.ndarray, s: float,
                        p: DetectorParams) -> tuple[np.ndarray, np.ndarray]:
    """At coarse pixels (>= ``coarse_pixel_mm``): seeds up to ``coarse_merge_mm`` apart that lie on
    one coarse blob are one candidate.  The band-pass sees a 1-2 mm calcification as a ring (its
    flat top is part of the background B), and noise puts seeds on that ring more than
    ``max_diameter_mm`` apart, in separate objects, with the dip of the ring between them.  Against
    a background 3 x wider (2 G(1.2 mm) - G(1.7 mm)) the whole blob stays bright, so the saddle test
    of :func:`_merge_seeds` (at 0.8 of the weaker seed) joins its seeds and not separate MCs."""
    if p.coarse_merge_mm <= 0 or s < p.coarse_pixel_mm or sr.size < 2:
        return sr, sc
    b = 3 * p.background_mm / s
    blob = ndi.gaussian_filter(sub, p.sigmas_mm[min(1, len(p.sigmas_mm) - 1)] / s, truncate=3.0)
    blob -= 2 * ndi.gaussian_filter(sub, b, truncate=3.0) - ndi.gaussian_filter(sub, np.sqrt(2) * b, truncate=3.0)
    wide = replace(p, max_diameter_mm=p.coarse_merge_mm, merge_saddle=0.8)
    return _merge_seeds(sr, sc, zmax, blob, np.ones(zmax.shape, dtype=np.int8), s, wide)


def _line_score(zline: np.ndarray, inside: np.ndarray, sr: np.ndarray, sc: np.ndarray, s: float,
                p: DetectorParams) -> np.ndarray:
    """Per seed: over 8 directions, the largest min(mean response on the two arms from
    ``line_inner_mm`` to ``line_outer_mm`` on either side).  A spot on a long line (vessel, a
    scanner line broken into short fragments) scores high, an MC on background about 0 (on the
    phantoms at most 0.7 for MCs of clusters of up to 12; a dense chain of MCs along a duct can
    reach the threshold).  Arm samples outside the breast are ignored; an arm with fewer than half
    of them inside (at the skin line, the chest wall, the pectoral edge) is left out, so the other
    arm decides alone."""
    theta = np.arange(8) * np.pi / 8
    d = np.arange(p.line_inner_mm, p.line_outer_mm + 1e-9, max(s, 0.1)) / s
    dr = np.sin(theta)[:, None] * d[None, :]  # (8, n_d)
    dc = np.cos(theta)[:, None] * d[None, :]
    best = np.zeros(sr.size, dtype=np.float32)
    inside_f = inside.astype(np.float32)
    for chunk in range(0, sr.size, 2048):
        r = sr[chunk:chunk + 2048, None, None].astype(np.float32)
        c = sc[chunk:chunk + 2048, None, None].astype(np.float32)
        arms = []
        for sign in (1.0, -1.0):
            rr, cc = (r + sign * dr[None]).ravel(), (c + sign * dc[None]).ravel()
            val = ndi.map_coordinates(zline, [rr, cc], order=1, mode="constant", cval=0.0).reshape(-1, *dr.shape)
            ok = ndi.map_coordinates(inside_f, [rr, cc], order=0, mode="constant",
                                     cval=0.0).reshape(val.shape) > 0.5
            n_ok = ok.sum(axis=2)
            mean = np.where(ok, val, 0.0).sum(axis=2) / np.maximum(n_ok, 1)
            arms.append(np.where(n_ok >= 0.5 * d.size, mean, np.inf))
        both = np.minimum(arms[0], arms[1])
        best[chunk:chunk + 2048] = np.where(np.isfinite(both), both, 0.0).max(axis=1)
    return best


def detect_microcalcifications(image: np.ndarray, spacing_mm, *, view: str | None = None,
                               breast: BreastRegion | None = None, params: DetectorParams | None = None,
                               name: str = "image") -> DetectionResult:
    """Detect MCs on a 2D mammogram array (rows, cols) with square pixels of ``spacing_mm``.

    Returns every candidate above ``params.threshold`` with its measurements; ``kept`` marks the
    candidates that pass the exclusion rules (module docstring).  Positions are in mm from the image
    corner: ``x_mm = (col + 0.5) * spacing``, ``y_mm = (row + 0.5) * spacing``.
    """
    p = params or DetectorParams()
    img, s = check_mammogram_array(image, spacing_mm, name)
    if breast is None:
        breast = segment_breast(img, s, view=view, name=name)
    shape = img.shape
    pad = int(np.ceil(4 * p.background_mm / s)) + 2
    rs, cs = breast.bbox()
    if rs.stop <= rs.start:
        raise InputError(f"{name}: empty breast region")
    block = max(int(round(p.noise_block_mm / s)), 8)
    block -= block % max(1, block // 16)  # a whole number of the tile's sampling stride
    # The crop starts on a multiple of the noise tile, so the tiles sit on a grid fixed to the image
    # (the noise estimate does not move with the breast mask's extent).
    r0, r1 = max(rs.start - pad, 0) // block * block, min(rs.stop + pad, shape[0])
    c0, c1 = max(cs.start - pad, 0) // block * block, min(cs.stop + pad, shape[1])
    sub = img[r0:r1, c0:c1]
    inside = breast.mask[r0:r1, c0:c1]
    margin = max(1, int(round(p.skin_margin_mm / s)))
    # border_value=1: the image edge (chest wall) is not a skin line and keeps no margin.
    # (square erosion via a separable minimum filter: O(1) per pixel whatever the margin)
    seed_zone = ndi.minimum_filter(inside, size=2 * margin + 1, mode="nearest")
    # ... but filters are unreliable on the outermost pixels of the image itself.
    edge = max(1, int(np.ceil(p.background_mm / s)))
    seed_zone[:edge if r0 == 0 else 0] = False
    seed_zone[seed_zone.shape[0] - (edge if r1 == shape[0] else 0):] = False
    seed_zone[:, :edge if c0 == 0 else 0] = False
    seed_zone[:, seed_zone.shape[1] - (edge if c1 == shape[1] else 0):] = False
    # Euclidean depth (the image edge, a cut chest wall, is not a skin line: no band there).
    depth = ndi.distance_transform_edt(inside) * s
    noise_zone = depth > p.noise_skin_mm

    # Multi-scale DoG, noise-normalised, keeping the running maximum over scales.
    g_bg = ndi.gaussian_filter(sub, p.background_mm / s, truncate=3.0)
    g_bg *= 2.0
    g_bg -= ndi.gaussian_filter(sub, np.sqrt(2.0) * p.background_mm / s, truncate=3.0)
    zmax = np.full(sub.shape, -np.inf, dtype=np.float32)
    kbest = np.zeros(sub.shape, dtype=np.int8)
    contrast = zline = None
    for k, sigma in enumerate(p.sigmas_mm):
        dog = ndi.gaussian_filter(sub, sigma / s, truncate=3.0)
        dog -= g_bg
        if contrast is None:
            contrast = dog.copy()  # G(sigma_0) - G(background): local contrast in image units
        noise = _tile_to_pixels(_block_robust_std(dog, noise_zone, block, overlap=True), block, dog.shape)
        dog /= noise
        if k == min(1, len(p.sigmas_mm) - 1):
            zline = dog.copy()  # a fine scale, noise-normalised: what the line rule samples
        better = dog > zmax
        zmax = np.where(better, dog, zmax)
        kbest[better] = k
    del dog

    nms = max(3, 2 * int(round(p.nms_radius_mm / s)) + 1)
    seeds = (zmax >= ndi.maximum_filter(zmax, size=nms)) & (zmax > p.threshold) & seed_zone
    sr, sc = np.nonzero(seeds)
    result = DetectionResult(empty_detections(), breast, s, shape, p)
    if sr.size == 0:
        return result

    obj_mask = (zmax > p.seg_threshold) & (depth > p.object_skin_mm)
    large_mask = _large_objects(obj_mask, s, p)
    obj_lab, _ = ndi.label(obj_mask)
    sr, sc = _merge_coarse_blobs(sub, sr, sc, zmax, s, p)
    sr, sc = _merge_seeds(sr, sc, zmax, contrast, obj_lab, s, p)
    seed_obj = obj_lab[sr, sc]
    objs, seeds_per_obj = np.unique(seed_obj, return_counts=True)
    # Sparse per-object statistics: only the pixels of objects that hold a seed.
    n_obj = int(obj_lab.max())
    has_seed = np.zeros(n_obj + 1, dtype=bool)
    has_seed[objs] = True
    orr, occ = np.nonzero(obj_lab)
    olab = obj_lab[orr, occ]
    sel = has_seed[olab]
    orr, occ, olab = orr[sel], occ[sel], olab[sel]
    ocon = contrast[orr, occ]
    peak = np.full(n_obj + 1, -np.inf, dtype=np.float32)
    np.maximum.at(peak, olab, ocon)
    half = ocon >= 0.5 * peak[olab]
    hr, hc, hlab = orr[half], occ[half], olab[half]
    area_all = np.bincount(hlab, minlength=n_obj + 1).astype(float)
    len_all, elong_all = _moments_shape(hr, hc, hlab, n_obj, s)
    area_px, length, elong = area_all[objs], len_all[objs], elong_all[objs]
    pos = np.searchsorted(objs, seed_obj)
    area_mm2 = np.maximum(area_px[pos], 1.0) * s * s / seeds_per_obj[pos]
    diameter = 2 * np.sqrt(area_mm2 / np.pi)
    grid = pixel_noise_grid(sub, inside, block)
    pix_noise = grid[np.minimum(sr // block, grid.shape[0] - 1), np.minimum(sc // block, grid.shape[1] - 1)]
    seed_contrast = contrast[sr, sc]
    local_bg = g_bg[sr, sc]
    spike = _single_pixel(sub, g_bg, sr, sc, pix_noise, s, p)
    del g_bg
    line = _line_score(zline, inside, sr, sc, s, p)

    reason = np.full(sr.size, "", dtype=object)
    reason[(diameter < p.min_diameter_mm) | spike] = "small"
    long_obj = length[pos] > p.linear_length_mm
    reason[(long_obj & (elong[pos] > p.max_elongation)) | (line > p.line_threshold)] = "linear"
    reason[long_obj & (elong[pos] <= p.max_elongation)] = "coarse_or_rim"  # open rims, arcs, big blobs
    reason[diameter > p.max_diameter_mm] = "large"
    reason[large_mask[sr, sc]] = "coarse_or_rim"

    rows, cols = sr + r0, sc + c0
    det = pd.DataFrame({
        "x_mm": (cols + 0.5) * s,
        "y_mm": (rows + 0.5) * s,
        "row": rows.astype(int),
        "col": cols.astype(int),
        "score": zmax[sr, sc].astype(float),
        "scale_mm": np.asarray(p.sigmas_mm, dtype=float)[kbest[sr, sc]],
        "diameter_mm": diameter,
        "area_mm2": area_mm2,
        "contrast": seed_contrast.astype(float),
        "noise": pix_noise.astype(float),
        "cnr": (seed_contrast / np.maximum(pix_noise, 1e-6)).astype(float),
        "length_mm": length[pos],
        "elongation": elong[pos],
        "background": local_bg.astype(float),
        "line_score": line.astype(float),
        "kept": reason == "",
        "reason": reason.astype(str),
        "source": "detector",
    })
    if p.classifier:
        from .classifier import load_classifier

        det = load_classifier(p.classifier, p.classifier_sha256).apply(det)
    result.detections = det.sort_values("score", ascending=False).reset_index(drop=True)
    return result

