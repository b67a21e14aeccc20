"""Synthetic breast ultrasound B-mode images for the cohort generator.

One 2D image per timepoint (rows = depth, columns = lateral, ``ultrasound_spacing_mm`` pixels):

* tissue echogenicity: a hypoechoic subcutaneous fat layer with bright septa, echogenic
  fibroglandular tissue with smooth texture, the pectoralis fascia at the bottom;
* speckle: a complex Gaussian scatter field blurred by an anisotropic point-spread function
  (axial finer than lateral), whose envelope is Rayleigh-distributed;
* depth attenuation (0.5 dB/cm/MHz at 7.5 MHz, two-way) partly compensated by the gain curve;
* a hypoechoic, slightly lobulated tumour wider than tall, whose size follows the patient's
  response schedule (the same final size as the MRI) and whose echotexture turns brighter and
  more heterogeneous with response (fibrosis replacing tumour);
* posterior acoustic shadowing (most tumours) or enhancement, in a band below the tumour
  whose strength scales with the tumour's remaining size;
* log compression to 8 bits.

At pCR a small, faintly hypoechoic scar remains, which the outline (reader ``GT_US``) follows.
A separate random stream (``[seed, patient, 7]``) leaves the MRI of the cohort unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

US_READER = "GT_US"
US_ROLE = "us_bmode"
#: Response progress at each timepoint (fraction of the final size change), as the MRI schedule.
_FRACTION = {"pre": 0.0, "c2": 0.45, "c4": 0.75, "post": 1.0}
_ATTENUATION_DB_PER_MM = 2 * 0.05 * 7.5  # two-way, 0.5 dB/cm/MHz at 7.5 MHz


def _image(array: np.ndarray, spacing: float) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((spacing, spacing))
    return image


def bmode(rng: np.random.Generator, shape: tuple[int, int], spacing: float, *, lesion: np.ndarray,
          lesion_echo: float, lesion_texture: float, posterior: float, fat_depth_mm: float) -> np.ndarray:
    """One 8-bit B-mode image; ``lesion`` is the tumour mask, ``posterior`` < 1 shadows, > 1 enhances."""
    rows, cols = shape
    depth = (np.arange(rows) + 0.5)[:, None] * spacing * np.ones((1, cols))
    # tissue echogenicity (backscatter amplitude)
    fat = depth < fat_depth_mm + 1.5 * ndimage.gaussian_filter1d(rng.standard_normal(cols), 40)[None, :]
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), (12, 30))
    texture /= texture.std() + 1e-9
    echo = np.where(fat, 0.45, 0.95 + 0.15 * texture)
    septa = fat & (np.abs(ndimage.gaussian_filter(rng.standard_normal(shape), (3, 25))) < 0.01)
    echo = np.where(ndimage.binary_dilation(septa, iterations=2), 1.3, echo)
    echo = np.where(depth > rows * spacing - 2.0, 1.6, echo)  # pectoralis fascia
    inner = ndimage.gaussian_filter(rng.standard_normal(shape), 4)
    inner /= inner.std() + 1e-9
    echo = np.where(lesion, lesion_echo * (1 + lesion_texture * inner), echo)
    # posterior acoustic feature: a band below the lesion, its columns, fading with depth
    if lesion.any():
        lesion_cols = lesion.any(axis=0)
        bottom = np.where(lesion_cols, rows - 1 - np.argmax(lesion[::-1], axis=0), rows)
        below = np.arange(rows)[:, None] > bottom[None, :]
        band = ndimage.gaussian_filter(below.astype(float) * lesion_cols[None, :], (0, 20))
        echo = echo * (1 + (posterior - 1) * band)
    # speckle: envelope of a PSF-blurred complex scatter field (Rayleigh amplitude)
    scatter = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    psf = (1.0, 2.5)  # pixels: axial resolution finer than lateral
    field = ndimage.gaussian_filter(scatter.real, psf) + 1j * ndimage.gaussian_filter(scatter.imag, psf)
    envelope = np.abs(field) / np.sqrt(np.mean(np.abs(field) ** 2))
    gain_db = -_ATTENUATION_DB_PER_MM * depth * 0.6  # the time-gain curve compensates 40 %
    amplitude = np.clip(echo, 0.02, None) * envelope * 10 ** (gain_db / 20)
    log = 20 * np.log10(amplitude + 1e-3)  # dB, 0 = mean tissue
    return np.clip((log + 40) / 50 * 255, 0, 255).astype(np.uint8)


def lesion_mask(shape: tuple[int, int], spacing: float, centre_mm: tuple[float, float], radii_mm: tuple[float, float],
                lobulation: np.ndarray, scale: float) -> np.ndarray:
    """Ellipse (lateral wider than deep) with a smooth lobulated border, every radius times ``scale``."""
    rows, cols = shape
    r = (np.arange(rows)[:, None] + 0.5) * spacing
    c = (np.arange(cols)[None, :] + 0.5) * spacing
    level = np.sqrt(((r - centre_mm[0]) / radii_mm[0]) ** 2 + ((c - centre_mm[1]) / radii_mm[1]) ** 2)
    return (scale - level + 0.08 * lobulation) > 0


def write_ultrasound(patient_dir: Path, cfg, seed: int, index: int, diameter_mm: float, volume_reduction: float,
                     mr_scales: dict[str, float], pcr: int) -> dict[str, Any]:
    """Write ``<tp>/us_bmode.nii.gz`` and ``<tp>/seg/GT_US__reference__us_bmode.nii.gz``; return the truth."""
    from ..imageio import write_image

    rng = np.random.default_rng([seed, index, 7])
    spacing = float(cfg.ultrasound_spacing_mm)
    width, depth = cfg.ultrasound_size_mm
    shape = (int(round(depth / spacing)), int(round(width / spacing)))
    final = max(0.0, 1.0 - volume_reduction) ** (1 / 3)
    lateral = 0.12 * width + 0.12 * width * (min(diameter_mm, 38.0) - 14.0) / 24.0  # 14-38 mm -> 4-8 mm
    radii = (lateral * rng.uniform(0.6, 0.8), lateral)
    centre = (float(rng.uniform(0.42, 0.52) * depth), float(rng.uniform(0.42, 0.58) * width))
    lobulation = ndimage.gaussian_filter(rng.standard_normal(shape), 25)
    lobulation /= lobulation.std() + 1e-9
    shadowing = bool(rng.random() < 0.6)
    fat_depth = float(rng.uniform(3.0, 6.0))
    exponent = float(rng.uniform(0.8, 1.2))
    truth: dict[str, Any] = {"reader": US_READER, "posterior": "shadowing" if shadowing else "enhancement",
                             "spacing_mm": spacing, "timepoints": {}}
    scar = max(0.22, 1.5 / radii[0])
    for tp in cfg.ultrasound_timepoints:
        scale = mr_scales.get(tp, 1.0 + (final - 1.0) * _FRACTION[tp] ** exponent)
        response = float(np.clip(1.0 - scale, 0.0, 1.0)) if tp != "pre" else 0.0
        shown = max(scale, scar)
        lesion = lesion_mask(shape, spacing, centre, radii, lobulation, shown)
        strength = 0.6 * min(1.0, scale)  # a shrinking tumour casts a weaker posterior feature
        image = bmode(rng, shape, spacing, lesion=lesion, lesion_echo=0.25 + 0.45 * response,
                      lesion_texture=0.15 + 0.35 * response, posterior=1 - strength if shadowing else 1 + strength,
                      fat_depth_mm=fat_depth)
        write_image(_image(image, spacing), patient_dir / tp / f"{US_ROLE}.nii.gz")
        write_image(_image(lesion.astype(np.uint8), spacing),
                    patient_dir / tp / "seg" / f"{US_READER}__reference__{US_ROLE}.nii.gz")
        truth["timepoints"][tp] = {"scale": round(float(scale), 4),
                                   "area_mm2": round(float(lesion.sum()) * spacing ** 2, 2)}
    truth["pcr"] = pcr
    return truth
