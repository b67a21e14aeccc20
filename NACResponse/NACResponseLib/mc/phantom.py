"""Synthetic 2D mammograms with known microcalcifications, sized in millimetres.

Why: detection, clustering and RESMIN categories need ground truth that real data rarely has.
Everything that matters for validation (MC positions, sizes, contrast-to-noise) is drawn in mm
*before* anything that depends on the pixel grid, so the same ``rng`` seed at 0.05, 0.07 or 0.1 mm
pixels places the same MCs at the same physical positions (only the texture and noise
realisations differ).

Image model (for-presentation-like, dense tissue bright, 12-bit range 0..4095):

- background outside the breast ~0 (with weak noise), an optional burned-in label (bright block
  with text-like stripes) in a background corner;
- the breast is a half-ellipse against the chest wall (column 0 for ``laterality="L"``, the last
  column for ``"R"``), fat ~1700 with fibroglandular texture (power-law 1/f^3 noise in cycles/mm)
  up to ~2300 (realistic ~30 % contrast) and a skin-edge fall-off over ~6 mm, shaped by the
  semicircular edge model (:func:`edge_thickness`: smooth, no slope step where it meets the
  plateau; the linear ramp used before had one 6 mm inside the skin, and the detector's band-pass
  saw it as a line of false candidates there);
- MLO views add a bright pectoral-muscle triangle in the top chest-wall corner;
- optional vessels (curvilinear bright bands ~1 mm wide) and benign coarse calcifications
  (2-4 mm discs, not part of the truth list) to exercise the detector's exclusion rules;
- realism options for the failure cases seen on real mammograms (all off by default):
  ``pad_mm`` surrounds the image with background so the breast touches no image edge (padded
  exports); ``skin_level`` sets how faint the periphery is at the skin line (0.55 by default, ~0.2 is
  closer to the uncompressed edge of a real breast); ``density`` shifts the fibroglandular fraction
  (0 as before, 1 = extremely dense); ``scanner_lines`` draws straight digitiser lines across the
  whole image, each broken into 0.4-1.4 mm fragments; ``film_edge`` adds a bright unexposed-film
  block along the image edge opposite the chest wall;
- quantum-like noise: Gaussian with variance growing linearly with the signal, at constant dose:
  the per-pixel standard deviation scales as ``0.1 mm / spacing`` (a pixel of a quarter of the
  area collects a quarter of the photons), so the noise per 0.1 x 0.1 mm area is the same at any
  pixel size.

Coordinates: ``x_mm`` along columns, ``y_mm`` along rows, from the corner of pixel (0, 0)
(pixel ``(r, c)`` covers ``[c*s, (c+1)*s) x [r*s, (r+1)*s)``, its centre is at ``(c+0.5)*s``).
``size_mm = (width along x, height along y)``.

CNR of an MC = its ideal peak contrast (centre of the projected sphere) divided by the local noise
standard deviation of a 0.1 mm reference pixel (:func:`noise_sigma`), so a given CNR means the same
detectability at any pixel size; partial-volume averaging lowers the peak seen at coarse pixels.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

MAX_VALUE = 4095.0
FAT_LEVEL = 1700.0
DENSE_LEVEL = 2300.0
PECTORAL_LEVEL = 2700.0
LABEL_LEVEL = 4000.0
NOISE_A = 40.0  # variance offset (electronic noise), detector units^2
NOISE_B = 0.2  # variance per detector unit (quantum noise)


REFERENCE_PIXEL_MM = 0.1


def noise_sigma(signal: np.ndarray | float, spacing_mm: float = REFERENCE_PIXEL_MM) -> np.ndarray | float:
    """Noise standard deviation of one pixel of ``spacing_mm`` at a given mean signal (constant dose)."""
    return np.sqrt(NOISE_A + NOISE_B * np.maximum(signal, 0.0)) * (REFERENCE_PIXEL_MM / spacing_mm)


def synthesize_mammogram(
    rng: np.random.Generator,
    *,
    spacing_mm: float = 0.1,
    size_mm: tuple[float, float] = (70.0, 90.0),
    view: str = "CC",
    laterality: str = "L",
    clusters: list[dict],
    n_vessels: int = 0,
    n_benign: int = 0,
    label: bool = True,
    min_separation_mm: float = 0.5,
    pad_mm: float = 0.0,
    skin_level: float = 0.55,
    density: float = 0.0,
    scanner_lines: int = 0,
    film_edge: bool = False,
) -> tuple[np.ndarray, list[dict]]:
    """Return ``(image float32 (rows, cols), truth)`` with one truth dict per inserted MC.

    ``clusters``: list of ``{"center_mm": (x, y), "n": int, "extent_mm": float, "diameter_mm": (lo, hi),
    "cnr": float or (lo, hi)}``. The first two MCs of a cluster lie at the two ends of a random
    diameter of length ``extent_mm`` and the rest uniformly inside that disc, so the cluster's true
    maximum Feret extent equals ``extent_mm`` (when ``n >= 2``). MCs of one cluster are kept at
    least ``min_separation_mm`` apart (edge to edge) where the disc allows it.

    Truth dicts: ``{"cluster": i, "x_mm", "y_mm", "diameter_mm", "cnr"}``, in the coordinates of
    the returned (padded) image.  The realism options (module docstring) draw their random numbers
    after everything else, so an image without them is the same as before they existed.
    """
    view = str(view).upper()
    laterality = str(laterality).upper()
    if view not in ("CC", "MLO"):
        raise ValueError(f"view must be 'CC' or 'MLO', not {view!r}")
    if laterality not in ("L", "R"):
        raise ValueError(f"laterality must be 'L' or 'R', not {laterality!r}")
    if not spacing_mm or spacing_mm <= 0:
        raise ValueError(f"spacing_mm must be positive, not {spacing_mm!r}")
    width_mm, height_mm = float(size_mm[0]), float(size_mm[1])

    # 1. Everything physical is drawn first, independent of the pixel grid.
    truth = _place_mcs(rng, clusters, min_separation_mm)
    vessels = [_draw_vessel(rng, width_mm, height_mm) for _ in range(int(n_vessels))]
    benign = [
        (rng.uniform(0.2, 0.7) * width_mm, rng.uniform(0.25, 0.75) * height_mm, rng.uniform(2.0, 4.0), rng.uniform(0, 1))
        for _ in range(int(n_benign))
    ]
    shape_seed = rng.uniform(-1.0, 1.0, size=4)
    grid_seed = int(rng.integers(0, 2**31 - 1))
    lines = [(rng.uniform(0.05, 0.95), rng.uniform(6.0, 10.0), int(rng.integers(0, 2**31 - 1)))
             for _ in range(int(scanner_lines))]
    film = (rng.uniform(3.0, 6.0), rng.uniform(0.4, 0.8)) if film_edge else None

    # 2. Pixel grid.
    s = float(spacing_mm)
    rows, cols = max(8, int(round(height_mm / s))), max(8, int(round(width_mm / s)))
    grng = np.random.default_rng(grid_seed)
    y = ((np.arange(rows, dtype=np.float32) + 0.5) * s)[:, None]
    x_raw = ((np.arange(cols, dtype=np.float32) + 0.5) * s)[None, :]
    # Distance from the chest wall: the breast points away from it.
    xc = x_raw if laterality == "L" else (width_mm - x_raw)

    # Breast outline: half-ellipse against the chest wall, slightly perturbed.
    ax = width_mm * (0.82 + 0.05 * shape_seed[0])
    cy = height_mm * (0.5 if view == "CC" else 0.56) + 0.02 * height_mm * shape_seed[1]
    ay = height_mm * (0.43 if view == "CC" else 0.50) * (1 + 0.04 * shape_seed[2])
    rho = np.sqrt((xc / ax) ** 2 + ((y - cy) / ay) ** 2)  # 1 on the skin line
    # Approximate distance (mm) inside the skin line, for the thickness fall-off.
    depth_mm = (1.0 - rho) * min(ax, ay)
    inside = depth_mm > 0
    if view == "MLO":
        pec_w, pec_h = width_mm * (0.30 + 0.04 * shape_seed[3]), height_mm * 0.55
        # Signed distance (mm) inside the pectoral boundary line; soft edge over ~0.5 mm.
        pec_depth = (1.0 - xc / pec_w - y / pec_h) / np.hypot(1.0 / pec_w, 1.0 / pec_h)
        # The MLO breast reaches up into the axilla along the chest wall.
        axilla = (xc / (pec_w * 1.25) + y / (pec_h * 1.1)) < 1.0
        depth_mm = np.where(axilla & ~inside, np.maximum(depth_mm, 3.0), depth_mm)
        inside = inside | axilla

    # 3. Tissue: power-law texture in physical frequency units, shaped by a density envelope.
    texture = _power_law_noise(grng, rows, cols, s, beta=3.0)
    envelope = np.exp(-(((xc - 0.35 * ax) / (0.45 * ax)) ** 2) - ((y - cy) / (0.7 * ay)) ** 2)
    dense = 1.0 / (1.0 + np.exp(-(2.2 * texture + 2.5 * envelope - 1.6 + 3.0 * float(density))))
    tissue = FAT_LEVEL + (DENSE_LEVEL - FAT_LEVEL) * dense
    falloff = skin_level + (1.0 - skin_level) * edge_thickness(depth_mm)
    image = np.where(inside, tissue * falloff, 0.0).astype(np.float32)
    if view == "MLO":
        wpec = np.clip(pec_depth / 0.5 + 0.5, 0.0, 1.0)
        image = ((1 - wpec) * image + wpec * (PECTORAL_LEVEL + 150.0 * texture)).astype(np.float32)

    for path, width, contrast in vessels:
        _add_vessel(image, path, width, contrast, s, inside)
    for bx, by, bd, rim in benign:
        if laterality == "R":
            bx = width_mm - bx
        _add_disc(image, bx, by, bd, 900.0, s, rim=rim > 0.5)

    # Smooth the outline a little (a real skin line is not a staircase).
    edge = ndi.gaussian_filter(inside.astype(np.float32), 0.3 / s)
    image *= np.clip(edge * 1.02, 0.0, 1.0)

    # 4. MCs: amplitude = cnr * local noise sigma, sphere projection averaged over each pixel.
    for mc in truth:
        r0, c0 = mc["y_mm"] / s - 0.5, mc["x_mm"] / s - 0.5
        ri, ci = int(round(r0)), int(round(c0))
        bg = float(image[min(max(ri, 0), rows - 1), min(max(ci, 0), cols - 1)])
        amplitude = mc["cnr"] * float(noise_sigma(bg))
        _add_sphere(image, mc["x_mm"], mc["y_mm"], mc["diameter_mm"], amplitude, s)

    # 5. Padding, artefacts, label, noise, clipping.
    npad = int(round(float(pad_mm) / s))
    if npad > 0:
        image = np.pad(image, npad)
        for mc in truth:
            mc["x_mm"] += npad * s
            mc["y_mm"] += npad * s
        rows, cols = image.shape
    if film is not None:
        _add_film_edge(image, s, laterality, *film)
    for frac, cnr, seed in lines:
        _add_scanner_line(image, s, frac, cnr, np.random.default_rng(seed))
    if label:
        _add_label(image, grng, s, laterality)
    sigma = noise_sigma(image, s).astype(np.float32)
    image += sigma * grng.standard_normal((rows, cols), dtype=np.float32)
    np.clip(image, 0.0, MAX_VALUE, out=image)
    return image.astype(np.float32, copy=False), truth


SKIN_FALLOFF_MM = 6.0


def edge_thickness(depth_mm: np.ndarray | float, radius_mm: float = SKIN_FALLOFF_MM) -> np.ndarray | float:
    """Relative thickness of the compressed breast ``depth_mm`` inside the skin line (0 at the skin, 1 inside).

    The semicircular edge model: the uncompressed rim of a breast compressed to thickness T is a
    half-cylinder, so at depth d < R the x-ray path is ``sqrt(1 - (1 - d/R)^2)`` of the full
    thickness and the full thickness beyond (R = T/2 in the model; here the phantom's fall-off width).
    The profile and its slope are continuous at d = R (C1), so the band-pass filter sees no ridge
    there; a linear ramp clipped at R has a slope step that a DoG turns into a line of false
    candidates R inside the skin.
    """
    u = np.clip(1.0 - np.asarray(depth_mm, dtype=np.float32) / np.float32(radius_mm), 0.0, 1.0)
    return np.sqrt(1.0 - u * u)


def _place_mcs(rng: np.random.Generator, clusters: list[dict], min_sep: float) -> list[dict]:
    truth: list[dict] = []
    for ci, cl in enumerate(clusters):
        n = int(cl.get("n", 0))
        if n <= 0:
            continue
        cx, cy = (float(v) for v in cl["center_mm"])
        extent = float(cl.get("extent_mm", 0.0))
        lo, hi = cl.get("diameter_mm", (0.2, 0.5))
        cnr = cl.get("cnr", 5.0)
        cnr_lo, cnr_hi = (cnr, cnr) if np.isscalar(cnr) else cnr
        diam = rng.uniform(float(lo), float(hi), size=n)
        cnrs = rng.uniform(float(cnr_lo), float(cnr_hi), size=n)
        radius = extent / 2.0
        angle = rng.uniform(0, math.pi)
        pts = np.zeros((n, 2))
        if n >= 2 and extent > 0:
            pts[0] = (radius * math.cos(angle), radius * math.sin(angle))
            pts[1] = -pts[0]
        k = 2 if n >= 2 and extent > 0 else 0
        tries = 0
        while k < n:
            tries += 1
            rr = radius * math.sqrt(rng.uniform())
            th = rng.uniform(0, 2 * math.pi)
            cand = np.array([rr * math.cos(th), rr * math.sin(th)])
            need = (diam[:k] + diam[k]) / 2.0 + min_sep
            if k == 0 or tries > 200 or np.all(np.hypot(*(pts[:k] - cand).T) >= need):
                pts[k] = cand
                k += 1
                tries = 0
        for j in range(n):
            truth.append({
                "cluster": ci,
                "x_mm": cx + float(pts[j, 0]),
                "y_mm": cy + float(pts[j, 1]),
                "diameter_mm": float(diam[j]),
                "cnr": float(cnrs[j]),
            })
    return truth


def _power_law_noise(rng: np.random.Generator, rows: int, cols: int, s: float, beta: float,
                     cutoff: float = 0.3) -> np.ndarray:
    """Zero-mean unit-variance noise with power spectrum ~ 1/(f^2+f0^2)^(beta/2), f in cycles/mm,
    rolled off above ``cutoff`` cycles/mm (anatomical blobs are not sub-millimetre)."""
    white = rng.standard_normal((rows, cols), dtype=np.float32)
    spec = sfft.rfft2(white, workers=-1)
    fy = sfft.fftfreq(rows, d=s).astype(np.float32)[:, None]
    fx = sfft.rfftfreq(cols, d=s).astype(np.float32)[None, :]
    f2 = fx * fx + fy * fy
    spec *= (f2 + np.float32(0.02**2)) ** np.float32(-beta / 4.0) * np.exp(-f2 / np.float32(cutoff**2))
    out = sfft.irfft2(spec, s=(rows, cols), workers=-1).astype(np.float32)
    out -= out.mean()
    out /= out.std() + 1e-12
    return out


def _patch(cx: float, cy: float, half_mm: float, s: float, shape: tuple[int, int]):
    """Pixel window around (cx, cy) and the pixel-centre coordinates inside it."""
    r0 = max(int(math.floor((cy - half_mm) / s)), 0)
    r1 = min(int(math.ceil((cy + half_mm) / s)) + 1, shape[0])
    c0 = max(int(math.floor((cx - half_mm) / s)), 0)
    c1 = min(int(math.ceil((cx + half_mm) / s)) + 1, shape[1])
    return r0, r1, c0, c1


def _add_sphere(image: np.ndarray, cx: float, cy: float, diameter: float, amplitude: float, s: float) -> None:
    """Add the projection of a sphere (profile sqrt(1-(r/R)^2)), averaged over 5x5 sub-pixels."""
    radius = diameter / 2.0
    r0, r1, c0, c1 = _patch(cx, cy, radius + s, s, image.shape)
    if r1 <= r0 or c1 <= c0:
        return
    sub = (np.arange(5) + 0.5) / 5.0
    ys = (np.arange(r0, r1)[:, None] + sub[None, :]).ravel() * s
    xs = (np.arange(c0, c1)[:, None] + sub[None, :]).ravel() * s
    d2 = ((ys[:, None] - cy) ** 2 + (xs[None, :] - cx) ** 2) / (radius * radius)
    prof = np.sqrt(np.clip(1.0 - d2, 0.0, None))
    prof = prof.reshape(r1 - r0, 5, c1 - c0, 5).mean(axis=(1, 3))
    image[r0:r1, c0:c1] += np.float32(amplitude) * prof.astype(np.float32)


def _add_disc(image: np.ndarray, cx: float, cy: float, diameter: float, amplitude: float, s: float,
              rim: bool = False) -> None:
    """A coarse benign calcification: a solid disc, or a rim (eggshell) ring."""
    radius = diameter / 2.0
    r0, r1, c0, c1 = _patch(cx, cy, radius + s, s, image.shape)
    yy = (np.arange(r0, r1)[:, None] + 0.5) * s
    xx = (np.arange(c0, c1)[None, :] + 0.5) * s
    d = np.hypot(yy - cy, xx - cx)
    prof = np.clip((radius - d) / s + 0.5, 0.0, 1.0)
    if rim:
        prof = prof * np.clip((d - 0.6 * radius) / s + 0.5, 0.0, 1.0)
    image[r0:r1, c0:c1] += np.float32(amplitude) * prof.astype(np.float32)


def _draw_vessel(rng: np.random.Generator, width_mm: float, height_mm: float):
    """A smooth curvilinear path (points in mm, chest-wall frame), its width and contrast."""
    t = np.linspace(0.0, 1.0, 200)
    y0 = rng.uniform(0.2, 0.8) * height_mm
    y1 = y0 + rng.uniform(-0.25, 0.25) * height_mm
    bend = rng.uniform(-0.08, 0.08) * height_mm
    xs = t * width_mm * rng.uniform(0.5, 0.8)
    ys = y0 + (y1 - y0) * t + bend * np.sin(math.pi * t)
    return np.stack([xs, ys], axis=1), rng.uniform(0.8, 1.4), rng.uniform(150.0, 300.0)


def _add_vessel(image: np.ndarray, path: np.ndarray, width: float, contrast: float, s: float,
                inside: np.ndarray) -> None:
    """Rasterise a vessel as a band with a smooth cross-section, only inside the breast."""
    rows, cols = image.shape
    line = np.zeros((rows, cols), dtype=bool)
    # Paths are drawn in the chest-wall frame of the left breast; mirror for R by the region mask.
    flip = bool(inside[:, -1].any()) and not bool(inside[:, 0].any())
    rr = np.clip((path[:, 1] / s).astype(int), 0, rows - 1)
    cc = np.clip((path[:, 0] / s).astype(int), 0, cols - 1)
    if flip:
        cc = cols - 1 - cc
    # Densify between the 200 path samples.
    n = max(int(np.abs(np.diff(rr)).sum() + np.abs(np.diff(cc)).sum()) + 2, 2)
    ti = np.linspace(0, len(rr) - 1, n)
    line[np.interp(ti, np.arange(len(rr)), rr).astype(int), np.interp(ti, np.arange(len(cc)), cc).astype(int)] = True
    dist = ndi.distance_transform_edt(~line) * s
    band = np.exp(-0.5 * (dist / (width / 2.355)) ** 2).astype(np.float32)
    image += np.float32(contrast) * band * inside


def _add_label(image: np.ndarray, rng: np.random.Generator, s: float, laterality: str) -> None:
    """A burned-in label (bright block with dark stripes) in the corner opposite the chest wall."""
    rows, cols = image.shape
    h, w = int(6.0 / s), int(14.0 / s)
    r0 = int(2.0 / s)
    c0 = cols - w - int(2.0 / s) if laterality == "L" else int(2.0 / s)
    if r0 + h >= rows or c0 < 0 or c0 + w > cols:
        return
    block = np.full((h, w), LABEL_LEVEL, dtype=np.float32)
    stripe = max(1, int(0.8 / s))
    for k in range(2, w // stripe - 1, 3):
        block[stripe: h - stripe, k * stripe:(k + 1) * stripe] = 200.0
    region = image[r0:r0 + h, c0:c0 + w]
    if np.all(region < 0.5 * FAT_LEVEL):  # only over background, never over the breast
        image[r0:r0 + h, c0:c0 + w] = block


def _add_scanner_line(image: np.ndarray, s: float, row_fraction: float, cnr: float, rng: np.random.Generator) -> None:
    """A straight digitiser line along the rows across the whole image, ~0.1 mm wide, broken into
    0.4-1.4 mm bright fragments separated by 0.3-1.0 mm gaps (each fragment alone is short enough to
    pass a length-based vessel rule)."""
    rows, cols = image.shape
    y0 = row_fraction * rows * s
    width_mm = cols * s
    on = np.zeros(cols, dtype=np.float32)
    x = rng.uniform(0.0, 1.0)
    xc = (np.arange(cols) + 0.5) * s
    while x < width_mm:
        length = rng.uniform(0.4, 1.4)
        on[(xc >= x) & (xc < x + length)] = 1.0
        x += length + rng.uniform(0.3, 1.0)
    yc = (np.arange(rows) + 0.5) * s
    sig = max(0.05, 0.4 * s)
    profile = np.exp(-0.5 * ((yc - y0) / sig) ** 2).astype(np.float32)
    near = np.flatnonzero(profile > 1e-3)
    level = image[near].mean(axis=0)  # amplitude follows the local signal's noise
    image[near] += np.float32(cnr) * noise_sigma(level).astype(np.float32)[None, :] * profile[near, None] * on[None, :]


def _add_film_edge(image: np.ndarray, s: float, laterality: str, width_mm: float, length_fraction: float) -> None:
    """A bright unexposed-film block along the lower part of the image edge opposite the chest wall, over background
    only (the breast is never covered)."""
    rows, cols = image.shape
    w = max(1, int(round(width_mm / s)))
    h = max(1, int(round(length_fraction * rows)))
    cs = slice(cols - w, cols) if laterality == "L" else slice(0, w)
    region = image[rows - h:, cs]
    region[region < 0.5 * FAT_LEVEL] = 0.95 * MAX_VALUE
