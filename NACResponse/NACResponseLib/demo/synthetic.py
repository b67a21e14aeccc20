"""Synthetic longitudinal NAC cohort with known ground truth (the demo's default data).

What is simulated, per patient (seeded, reproducible):

* Clinical variables (age, menopause, ER/PR/HER2, Ki-67, subtype, cT/cN, regimen) and outcomes.
  pCR follows the published direction: HER2+ raises, hormone-receptor+ lowers the odds
  (subtype rates close to I-SPY2: HR-/HER2+ ~0.6, HR+/HER2- ~0.15).  Miller-Payne grade, RCB
  index/class and axillary pCR are derived from the simulated response.
* MRI at each timepoint on a small breast field of view: fat, fibroglandular tissue with
  smoothed-noise texture, a lobulated enhancing tumour (optional satellite nodule, optional
  necrotic core) with heterogeneous texture and wash-in/wash-out kinetics: DCE pre / early /
  late, T2W, DWI (b=800) and ADC.  DWI/ADC are on a coarser grid (2x voxel size), as acquired.
* Response: responders shrink concentrically or fragment into islands; at pCR only a faintly
  enhancing tumour bed remains (which readers still outline); non-responders stay or grow.
  Enhancement falls and ADC rises with response; pre-treatment enhancement and heterogeneity
  carry part of the pCR signal, as radiomics studies report.
* Readers R1, R2: the true mask with smooth boundary jitter, a reader-specific size bias and an
  occasionally missed satellite.  The truth itself is saved as reader GT (method ``reference``).
* Mammograms (CC and MLO, 0.1 mm pixels) at pre and post for patients with microcalcification
  clusters; in RESMIN cases the mass responds while the MC extent does not shrink.
* Ultrasound B-mode (2D, 0.1 mm pixels) at pre, c2 and c4 (see ultrasound.py): speckle, depth
  attenuation, posterior shadowing or enhancement and a hypoechoic tumour that follows the
  patient's response schedule; its outline is saved as reader ``GT_US`` (method ``reference``).

Output is the folder convention of :mod:`NACResponseLib.study.importers` plus ``ground_truth.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..atomic import atomic_write_text
from ..imageio import write_image
from ..provenance import json_default
from ..study.manifest import write_clinical
from .ultrasound import write_ultrasound

DAYS = {"pre": 0, "c2": 42, "c4": 84, "post": 150}
CYCLES = {"pre": 0, "c2": 2, "c4": 4, "post": 6}


@dataclass
class SyntheticConfig:
    """Sizes of the simulated acquisitions (DCE grid; DWI/ADC use ``coarse_factor`` x voxels)."""

    size: tuple[int, int, int] = (64, 64, 32)  # x, y, z voxels of the DCE/T2 grid
    spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)  # mm
    coarse_factor: int = 2
    tumour_diameter_mm: tuple[float, float] = (14.0, 38.0)  # pre-NAC longest diameter range
    timepoints: tuple[str, ...] = ("pre", "c2", "post")
    readers: tuple[str, ...] = ("R1", "R2")
    mc_fraction: float = 0.4  # patients with a microcalcification cluster
    resmin_fraction: float = 0.5  # of MC patients who respond: MC extent does not shrink
    mammogram_size_mm: tuple[float, float] = (60.0, 75.0)
    mammogram_spacing_mm: float = 0.1
    noise_sd: float = 6.0
    ultrasound_timepoints: tuple[str, ...] = ("pre", "c2", "c4")  # () = no ultrasound
    ultrasound_size_mm: tuple[float, float] = (32.0, 24.0)  # width, depth
    ultrasound_spacing_mm: float = 0.1


# ---------------------------------------------------------------------------------------------
# clinical variables and outcomes
# ---------------------------------------------------------------------------------------------

def _clinical(rng: np.random.Generator, pid: str, diameter_mm: float) -> tuple[dict[str, Any], float]:
    age = float(np.clip(rng.normal(50, 10), 25, 80))
    er = int(rng.random() < 0.62)
    pr = int(er and rng.random() < 0.8)
    her2 = int(rng.random() < 0.28)
    hr = int(er or pr)
    subtype = {(1, 0): "HR+/HER2-", (1, 1): "HR+/HER2+", (0, 1): "HR-/HER2+", (0, 0): "TN"}[(hr, her2)]
    ki67 = float(np.clip(rng.normal(45 if subtype in ("TN", "HR-/HER2+") else 22, 12), 2, 95))
    ct = "cT1" if diameter_mm <= 20 else "cT2" if diameter_mm <= 50 else "cT3"
    cn = rng.choice(["cN0", "cN1", "cN2"], p=[0.45, 0.45, 0.10]).item()
    regimen = "TCHP" if her2 else rng.choice(["AC-T", "ddAC-T", "TC"]).item()
    # Published direction: HER2+ raises, HR+ lowers the odds of pCR; proliferation raises it.
    logit = -0.5 + 1.0 * her2 - 1.3 * hr + 0.02 * (ki67 - 30) - 0.03 * (diameter_mm - 25)
    clinical = {
        "patient_id": pid, "age": round(age, 1), "menopausal_status": "post" if age + rng.normal(0, 3) > 51 else "pre",
        "er": er, "pr": pr, "her2": her2, "ki67": round(ki67, 1), "subtype": subtype, "ct": ct, "cn": cn,
        "regimen": regimen,
    }
    return clinical, logit


def _outcomes(rng: np.random.Generator, pcr: int, reduction: float, cn: str) -> dict[str, Any]:
    """Miller-Payne, RCB and axillary pCR consistent with the simulated volume reduction."""
    if pcr:
        mp, rcb = 5, 0.0
    else:
        mp = 4 if reduction > 0.9 else 3 if reduction > 0.3 else 2 if reduction > 0.05 else 1
        rcb = float(max(0.2, 0.9 + 2.4 * (1 - reduction) + (0.8 if cn != "cN0" else 0) + rng.normal(0, 0.35)))
    rcb_class = "0" if rcb == 0 else "I" if rcb <= 1.36 else "II" if rcb <= 3.28 else "III"
    axillary = 1 if cn == "cN0" else int(rng.random() < (0.85 if pcr else 0.35))
    return {"pcr": pcr, "axillary_pcr": axillary, "miller_payne": mp, "rcb_index": round(rcb, 3), "rcb_class": rcb_class}


# ---------------------------------------------------------------------------------------------
# anatomy and tumour
# ---------------------------------------------------------------------------------------------

def _smooth_noise(rng: np.random.Generator, shape, sigma_vox) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return field / (field.std() + 1e-6)


def _grid_mm(cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nx, ny, nz = cfg.size
    sx, sy, sz = cfg.spacing
    z, y, x = np.meshgrid(np.arange(nz) * sz, np.arange(ny) * sy, np.arange(nx) * sx, indexing="ij")
    return x.astype(np.float32), y.astype(np.float32), z.astype(np.float32)


@dataclass
class _Tumour:
    centre: np.ndarray  # mm (x, y, z)
    radii: np.ndarray  # mm
    lobulation: np.ndarray  # smooth field on the grid
    satellite: np.ndarray | None  # mm centre
    satellite_radius: float
    necrotic: bool

    def level(self, x, y, z, scale: float) -> np.ndarray:
        """Signed 'inside-ness' (> 0 inside) of the tumour scaled by ``scale`` in every radius."""
        r = np.sqrt(((x - self.centre[0]) / self.radii[0]) ** 2 + ((y - self.centre[1]) / self.radii[1]) ** 2
                    + ((z - self.centre[2]) / self.radii[2]) ** 2)
        return scale - r + 0.12 * self.lobulation

    def satellite_mask(self, x, y, z, scale: float) -> np.ndarray:
        if self.satellite is None or scale < 0.5:
            return np.zeros(x.shape, bool)
        d = np.sqrt((x - self.satellite[0]) ** 2 + (y - self.satellite[1]) ** 2 + (z - self.satellite[2]) ** 2)
        return d <= self.satellite_radius * min(1.0, scale)


def _make_tumour(rng, cfg: SyntheticConfig, shape, diameter_mm: float) -> _Tumour:
    fov = np.array(cfg.size) * np.array(cfg.spacing)
    centre = fov / 2 + rng.uniform(-0.08, 0.08, 3) * fov
    a = diameter_mm / 2
    radii = np.array([a, a * rng.uniform(0.7, 1.0), a * rng.uniform(0.6, 0.95)])
    satellite = None
    if rng.random() < 0.35:
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        satellite = centre + direction * (radii.max() + rng.uniform(4, 7))
        satellite = np.clip(satellite, 6, fov - 6)
    return _Tumour(centre, radii, _smooth_noise(rng, shape, 3.0), satellite, float(rng.uniform(2.0, 3.0)),
                   bool(rng.random() < 0.25))


def _response_schedule(rng, pcr: int, latent: float, timepoints) -> tuple[dict[str, float], str, float]:
    """Per-timepoint linear scale of the tumour (1 = baseline) and the shrinkage pattern."""
    pattern = "fragmented" if rng.random() < 0.35 else "concentric"
    if pcr:
        final = 0.0
    elif latent > -0.5 and rng.random() < 0.6:  # partial responder
        final = float(rng.uniform(0.35, 0.8))
    else:  # non-responder: stable or growing
        final = float(rng.uniform(0.92, 1.15))
    frac = {"pre": 0.0, "c2": 0.45, "c4": 0.75, "post": 1.0}
    scales = {}
    for tp in timepoints:
        f = frac[tp]
        scales[tp] = float(1.0 + (final - 1.0) * f ** rng.uniform(0.8, 1.2))
    volume_reduction = 1.0 - final ** 3
    return scales, pattern, volume_reduction


def _tumour_mask(tum: _Tumour, x, y, z, scale: float, pattern: str, frag_field: np.ndarray) -> np.ndarray:
    if scale <= 0.02:
        return np.zeros(x.shape, bool)
    if pattern == "concentric" or scale >= 0.98:
        return (tum.level(x, y, z, scale) > 0) | tum.satellite_mask(x, y, z, scale)
    # Fragmented: baseline extent kept, tissue breaks into islands whose share matches the volume.
    base = (tum.level(x, y, z, 1.0) > 0) | tum.satellite_mask(x, y, z, 1.0)
    keep = scale ** 3
    values = frag_field[base]
    threshold = np.quantile(values, 1 - keep) if values.size else 0
    mask = base & (frag_field >= threshold)
    return ndimage.binary_opening(mask, iterations=1) | (mask & (frag_field > threshold + 1.0))


def _tumour_bed(tum: _Tumour, x, y, z) -> np.ndarray:
    """After response a small, faintly enhancing scar (at least ~8 mm across) remains where the tumour was."""
    return tum.level(x, y, z, max(0.28, 4.0 / float(tum.radii.min()))) > 0


# ---------------------------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------------------------

def _reader_mask(rng, truth: np.ndarray, spacing_zyx, bias_mm: float, jitter_mm: float,
                 satellite: np.ndarray | None, miss_satellite: bool) -> np.ndarray:
    """A human-like outline: smooth boundary jitter + size bias; may miss the satellite."""
    base = truth & ~satellite if (miss_satellite and satellite is not None) else truth
    if not base.any():
        base = truth
    inside = ndimage.distance_transform_edt(base, sampling=spacing_zyx)
    outside = ndimage.distance_transform_edt(~base, sampling=spacing_zyx)
    signed = np.where(base, inside - 0.5, 0.5 - outside)  # mm, > 0 inside; boundary voxels at +-0.5
    field = _smooth_noise(rng, truth.shape, 2.5) * jitter_mm + bias_mm
    mask = signed + field > 0.0
    mask = ndimage.binary_fill_holes(mask)
    # A lesion smaller than the jitter would vanish: readers outline such foci generously instead.
    return mask if mask.any() else ndimage.binary_dilation(truth)


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------

def _to_image(array: np.ndarray, spacing, origin=(0.0, 0.0, 0.0), dtype=np.int16) -> sitk.Image:
    image = sitk.GetImageFromArray(np.asarray(np.clip(np.rint(array), np.iinfo(dtype).min, np.iinfo(dtype).max),
                                              dtype=dtype))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    return image


def _coarse(array: np.ndarray, f: int) -> np.ndarray:
    z, y, x = (s // f * f for s in array.shape)
    a = array[:z, :y, :x]
    return a.reshape(z // f, f, y // f, f, x // f, f).mean(axis=(1, 3, 5))


def _mr_images(rng, cfg: SyntheticConfig, anatomy: dict[str, np.ndarray], tumour: np.ndarray,
               bed: np.ndarray, kin: dict[str, float], tex: np.ndarray, necrosis: np.ndarray) -> dict[str, sitk.Image]:
    fat, fgt = anatomy["fat"], anatomy["fgt"]
    air = ~(fat | fgt)
    noise = lambda: rng.normal(0, cfg.noise_sd, fat.shape).astype(np.float32)  # noqa: E731
    # Pre-contrast T1 (fat-suppressed), relative enhancement per tissue for early / late phases.
    s0 = np.where(air, 5.0, np.where(fgt, 100.0, 55.0)).astype(np.float32)
    e_early = np.where(fgt, 0.25, 0.05).astype(np.float32) + anatomy["bpe"]
    e_late = np.where(fgt, 0.35, 0.07).astype(np.float32) + anatomy["bpe"] * 1.2
    t2 = np.where(air, 5.0, np.where(fgt, 70.0, 160.0)).astype(np.float32)
    adc = np.where(air, 0.0, np.where(fgt, 1700.0, 400.0)).astype(np.float32)  # 1e-6 mm^2/s
    tumour_live = tumour & ~necrosis
    t_s0 = 105.0 + 8.0 * tex
    s0 = np.where(tumour, t_s0, s0)
    e_early = np.where(tumour_live, kin["early"] * (1 + 0.25 * tex), e_early)
    e_late = np.where(tumour_live, kin["late"] * (1 + 0.25 * tex), e_late)
    e_early = np.where(necrosis & tumour, 0.1, e_early)
    e_late = np.where(necrosis & tumour, 0.25, e_late)
    e_early = np.where(bed & ~tumour, 0.45, e_early)  # tumour bed: faint, below the FTV threshold
    e_late = np.where(bed & ~tumour, 0.55, e_late)
    t2 = np.where(tumour, 110.0 + 15.0 * tex + np.where(necrosis, 60.0, 0.0), t2)
    adc = np.where(tumour, kin["adc"] + 120.0 * tex + np.where(necrosis, 900.0, 0.0), adc)
    adc = np.where(bed & ~tumour, 1400.0, adc)
    b = 800.0
    dwi_s0 = np.where(air, 5.0, np.where(fgt, 90.0, 40.0)) + np.where(tumour, 40.0, 0.0)
    dwi = dwi_s0 * np.exp(-b * adc * 1e-6) * 3.0
    f, sp = cfg.coarse_factor, cfg.spacing
    coarse_sp = tuple(s * f for s in sp)
    coarse_origin = tuple(0.5 * s * (f - 1) for s in sp)
    return {
        "dce_pre": _to_image(s0 + noise(), sp),
        "dce_early": _to_image(s0 * (1 + e_early) + noise(), sp),
        "dce_late": _to_image(s0 * (1 + e_late) + noise(), sp),
        "t2w": _to_image(t2 + noise(), sp),
        "dwi_b800": _to_image(_coarse(dwi, f) + rng.normal(0, cfg.noise_sd / 2, _coarse(dwi, f).shape), coarse_sp,
                              coarse_origin),
        "adc": _to_image(np.clip(_coarse(adc, f) + rng.normal(0, 60, _coarse(adc, f).shape), 0, None), coarse_sp,
                         coarse_origin),
    }


def _anatomy(rng, cfg: SyntheticConfig, x, y, z) -> dict[str, np.ndarray]:
    nx, ny, nz = cfg.size
    sx, sy, sz = cfg.spacing
    # Breast: a half-ellipsoid whose base is the posterior (y = 0) side of the field of view.
    ry, rx, rz = ny * sy * 1.05, nx * sx * 0.62, nz * sz * 0.75
    cx, cz = nx * sx / 2, nz * sz / 2
    breast = ((x - cx) / rx) ** 2 + (y / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1.0
    texture = _smooth_noise(rng, x.shape, (1.2, 2.5, 2.5))
    density = rng.uniform(-0.3, 0.8)  # fibroglandular fraction
    fgt = breast & (texture + 0.6 * (1 - y / (ny * sy)) > 1.1 - density)
    bpe = np.where(fgt, 0.1 * rng.uniform(0, 1) * (1 + _smooth_noise(rng, x.shape, 4.0) * 0.3), 0.0).astype(np.float32)
    return {"breast": breast, "fat": breast & ~fgt, "fgt": fgt, "bpe": bpe}


# ---------------------------------------------------------------------------------------------
# mammograms
# ---------------------------------------------------------------------------------------------

def _mc_plan(rng, cfg: SyntheticConfig, responder: bool, resmin: bool) -> dict[str, list[dict]]:
    """MC clusters at pre and post (the same clusters in CC and MLO, positions in mm)."""
    w, h = cfg.mammogram_size_mm
    centre = (float(rng.uniform(0.4, 0.6) * w), float(rng.uniform(0.4, 0.6) * h))
    extent = float(rng.uniform(8, 25))
    pre = {"center_mm": centre, "n": int(rng.integers(8, 20)), "extent_mm": extent,
           "diameter_mm": (0.2, 0.5), "cnr": float(rng.uniform(4, 8))}
    if responder and not resmin:
        shrink = float(rng.uniform(0.0, 0.5))
        post = [] if shrink < 0.15 else [{**pre, "n": max(3, int(pre["n"] * shrink) + 2), "extent_mm": extent * shrink}]
    elif responder and resmin:
        post = [{**pre, "n": max(5, int(pre["n"] * 0.8)), "extent_mm": extent * rng.uniform(0.92, 1.1)}]
    else:
        post = [{**pre, "extent_mm": extent * rng.uniform(0.95, 1.35)}]
    return {"pre": [pre], "post": post}


def _mammograms(rng, cfg: SyntheticConfig, clusters: list[dict], laterality: str):
    from ..mc.phantom import synthesize_mammogram

    out, truth = {}, {}
    for view in ("CC", "MLO"):
        image, mcs = synthesize_mammogram(rng, spacing_mm=cfg.mammogram_spacing_mm, size_mm=cfg.mammogram_size_mm,
                                          view=view, laterality=laterality, clusters=clusters)
        img = sitk.GetImageFromArray(np.clip(np.rint(image), 0, 65535).astype(np.uint16))
        img.SetSpacing((cfg.mammogram_spacing_mm, cfg.mammogram_spacing_mm))
        key = f"mg_{view.lower()}_{laterality}"
        out[key], truth[key] = img, mcs
    return out, truth


# ---------------------------------------------------------------------------------------------
# the cohort
# ---------------------------------------------------------------------------------------------

def generate_cohort(out_dir: str | Path, n_patients: int = 40, seed: int = 0,
                    config: SyntheticConfig | None = None, **overrides: Any) -> Path:
    """Write a synthetic cohort in the folder convention; return ``out_dir``.

    ``overrides`` set :class:`SyntheticConfig` fields, e.g. ``timepoints=("pre", "c2", "c4", "post")``.
    """
    cfg = config or SyntheticConfig()
    if overrides:
        cfg = SyntheticConfig(**{**asdict(cfg), **overrides})
    unknown = (set(cfg.timepoints) | set(cfg.ultrasound_timepoints)) - set(DAYS)
    if unknown or "pre" not in cfg.timepoints:
        raise ValueError(f"timepoints must include 'pre' and be among {list(DAYS)}; got {cfg.timepoints}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x, y, z = _grid_mm(cfg)
    spacing_zyx = tuple(reversed(cfg.spacing))
    clinical_rows: dict[str, dict[str, Any]] = {}
    truth: dict[str, Any] = {"seed": seed, "config": asdict(cfg), "patients": {}}
    for i in range(n_patients):
        pid = f"P{i + 1:03d}"
        rng = np.random.default_rng([seed, i])
        diameter = float(rng.uniform(*cfg.tumour_diameter_mm))
        clinical, logit = _clinical(rng, pid, diameter)
        latent = logit + rng.normal(0, 0.6)
        pcr = int(rng.random() < 1 / (1 + math.exp(-latent)))
        scales, pattern, reduction = _response_schedule(rng, pcr, latent, cfg.timepoints)
        outcomes = _outcomes(rng, pcr, reduction, clinical["cn"])
        clinical_rows[pid] = {**{k: v for k, v in clinical.items() if k != "patient_id"}, **outcomes}
        anatomy = _anatomy(rng, cfg, x, y, z)
        tum = _make_tumour(rng, cfg, x.shape, diameter)
        frag_field = _smooth_noise(rng, x.shape, 1.5)
        # Kinetics: aggressive/responding tumours enhance more and wash out (type III curve).
        z_lat = float(np.tanh(latent / 2))
        early0 = 1.25 + 0.35 * z_lat + rng.normal(0, 0.12)
        washout = 0.8 + 0.1 * z_lat + rng.normal(0, 0.05)
        heterogeneity = 0.6 + 0.4 * z_lat + rng.normal(0, 0.15)
        tex = _smooth_noise(rng, x.shape, 1.0) * max(0.15, heterogeneity)
        p_truth: dict[str, Any] = {"pcr": pcr, "latent_logit": round(latent, 3), "pattern": pattern,
                                   "volume_reduction": round(reduction, 3), "scales": scales, "timepoints": {}}
        reader_bias = {r: rng.normal(0.3 * (j - 0.5), 0.25) for j, r in enumerate(cfg.readers)}
        for tp in cfg.timepoints:
            scale = scales[tp]
            tumour = _tumour_mask(tum, x, y, z, scale, pattern, frag_field)
            bed = _tumour_bed(tum, x, y, z) if tp != "pre" else np.zeros(x.shape, bool)
            gt = tumour | bed
            if not gt.any():
                gt = _tumour_bed(tum, x, y, z)
            satellite = tum.satellite_mask(x, y, z, scale) if tum.satellite is not None else None
            necrosis = (tum.level(x, y, z, 0.45 * scale) > 0) if tum.necrotic and scale > 0.5 else np.zeros(x.shape, bool)
            response = 1 - scale if tp != "pre" else 0.0
            kin = {"early": max(0.2, early0 * (1 - 0.6 * response)),
                   "late": max(0.25, early0 * washout * (1 - 0.5 * response)),
                   "adc": 900.0 + 500.0 * response - 80 * z_lat}
            images = _mr_images(rng, cfg, anatomy, tumour, bed, kin, tex, necrosis)
            tp_dir = out / pid / tp
            for key, image in images.items():
                write_image(image, tp_dir / f"{key}.nii.gz")
            write_image(_to_image(gt, cfg.spacing, dtype=np.uint8), tp_dir / "seg" / "GT__reference.nii.gz")
            missed = {}
            for r in cfg.readers:
                miss = bool(satellite is not None and satellite.any() and rng.random() < 0.35)
                mask = _reader_mask(rng, gt, spacing_zyx, reader_bias[r], 0.8, satellite, miss)
                missed[r] = miss
                write_image(_to_image(mask, cfg.spacing, dtype=np.uint8), tp_dir / "seg" / f"{r}__manual.nii.gz")
            voxel_ml = float(np.prod(cfg.spacing)) / 1000.0
            p_truth["timepoints"][tp] = {
                "tumour_volume_ml": round(float(tumour.sum()) * voxel_ml, 3),
                "gt_volume_ml": round(float(gt.sum()) * voxel_ml, 3),
                "enhancement_early": round(kin["early"], 3), "missed_satellite": missed,
            }
        # Mammograms with MC clusters (pre and post only).
        if rng.random() < cfg.mc_fraction and "post" in cfg.timepoints:
            responder = pcr or reduction > 0.5
            resmin = bool(responder and rng.random() < cfg.resmin_fraction)
            laterality = "L" if rng.random() < 0.5 else "R"
            plan = _mc_plan(rng, cfg, bool(responder), resmin)
            p_truth["mc"] = {"laterality": laterality, "resmin": resmin, "mass_responder": bool(responder),
                             "clusters": plan, "mcs": {}}
            for tp in ("pre", "post"):
                images, mcs = _mammograms(rng, cfg, plan[tp], laterality)
                for key, image in images.items():
                    write_image(image, out / pid / tp / f"{key}.nii.gz")
                p_truth["mc"]["mcs"][tp] = mcs
        if cfg.ultrasound_timepoints:
            p_truth["ultrasound"] = write_ultrasound(out / pid, cfg, seed, i, diameter, reduction, scales, pcr)
        truth["patients"][pid] = p_truth
    write_clinical(clinical_rows, out / "clinical.csv")
    atomic_write_text(out / "ground_truth.json", json.dumps(truth, indent=1, default=json_default))
    return out
