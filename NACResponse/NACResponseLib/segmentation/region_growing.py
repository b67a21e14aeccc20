"""Seeded region growing: a quick ROI from one click on T2, DWI, ultrasound (2D or 3D).

The region is the set of voxels connected to the seed (face connectivity by default) whose
intensity lies in [lower, upper].  Without explicit bounds they come from the seed's
neighbourhood, mean +/- ``tolerance_sd`` standard deviations, then are re-estimated from the grown
region ``iterations`` times (the confidence-connected scheme, more robust than a 27-voxel block).
ITK's connected-threshold filter does the growing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputError


def seed_index(image: sitk.Image, seed: Sequence[float], *, physical: bool = False) -> tuple[int, ...]:
    """Seed as a voxel index (x, y[, z]); ``physical`` seeds are LPS points in mm."""
    if len(seed) != image.GetDimension():
        raise InputError(f"seed {list(seed)} needs {image.GetDimension()} coordinates")
    if physical:
        idx = image.TransformPhysicalPointToIndex(tuple(float(s) for s in seed))
    else:
        idx = tuple(int(round(float(s))) for s in seed)
    if any(i < 0 or i >= n for i, n in zip(idx, image.GetSize())):
        raise InputError(f"seed {list(seed)} (voxel {list(idx)}) lies outside the image of size {image.GetSize()}")
    return tuple(int(i) for i in idx)


def neighbourhood_bounds(image: sitk.Image, index: Sequence[int], radius: int = 1,
                         tolerance_sd: float = 2.5) -> tuple[float, float]:
    """mean -/+ tolerance_sd x sd of the (2 radius + 1)^d block around the seed (clipped)."""
    array = sitk.GetArrayViewFromImage(image)
    sl = tuple(slice(max(0, i - radius), i + radius + 1) for i in reversed(index))
    block = np.asarray(array[sl], float)
    mean, sd = float(block.mean()), float(block.std())
    sd = max(sd, 1e-6 * max(1.0, abs(mean)))
    return mean - tolerance_sd * sd, mean + tolerance_sd * sd


def region_grow(image: sitk.Image, seed: Sequence[float], *, lower: float | None = None,
                upper: float | None = None, tolerance_sd: float = 2.5, radius: int = 1,
                physical: bool = False, full_connectivity: bool = False, iterations: int = 2,
                fill_holes: bool = True) -> sitk.Image:
    """Binary uint8 region connected to ``seed`` on ``image``'s grid."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("region growing needs a single-component (grey-level) image")
    idx = seed_index(image, seed, physical=physical)
    auto_lo, auto_hi = neighbourhood_bounds(image, idx, radius, tolerance_sd)
    lo = auto_lo if lower is None else float(lower)
    hi = auto_hi if upper is None else float(upper)
    value = float(image.GetPixel(idx))
    if not lo <= value <= hi:
        raise InputError(f"seed value {value:g} lies outside the intensity window [{lo:g}, {hi:g}]; "
                         "choose another seed or widen the window")
    source = sitk.Cast(image, sitk.sitkFloat64)
    array = _grow(source, idx, lo, hi, full_connectivity)
    if lower is None or upper is None:
        values = sitk.GetArrayViewFromImage(source)
        for _ in range(max(0, int(iterations))):
            region = values[array]
            mean, sd = float(region.mean()), float(region.std())
            sd = max(sd, 1e-6 * max(1.0, abs(mean)))
            lo = mean - tolerance_sd * sd if lower is None else lo
            hi = mean + tolerance_sd * sd if upper is None else hi
            if not lo <= value <= hi:
                break
            array = _grow(source, idx, lo, hi, full_connectivity)
    if fill_holes:
        array = ndimage.binary_fill_holes(array)
    out = sitk.GetImageFromArray(array.astype(np.uint8))
    out.CopyInformation(image)
    return out


def _grow(image: sitk.Image, idx, lo: float, hi: float, full_connectivity: bool) -> np.ndarray:
    grower = sitk.ConnectedThresholdImageFilter()
    grower.SetSeedList([idx])
    grower.SetLower(lo)
    grower.SetUpper(hi)
    grower.SetReplaceValue(1)
    grower.SetConnectivity(grower.FullConnectivity if full_connectivity else grower.FaceConnectivity)
    return sitk.GetArrayFromImage(grower.Execute(image)).astype(bool)
