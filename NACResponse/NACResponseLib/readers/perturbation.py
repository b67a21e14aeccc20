"""Perturbations of one case for single-reader reproducibility (Zwanenburg et al., Sci Rep 2019).

The mask is eroded/dilated by a fraction of a millimetre, its contour randomised with smooth
noise, and the image translated by sub-voxel shifts and rotated about the tumour centre.  The
generators are pure functions of SimpleITK images; :func:`perturbation_features` re-extracts
radiomics (:func:`NACResponseLib.radiomics.extract`) from every perturbation of every case, each
perturbation named like a reader, for the ICC in :mod:`.reproducibility`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import InputError, NACError
from ..study.store import StudyStore


def _signed_distance(mask) -> np.ndarray:
    """Voxel-centre signed distance in mm: -(distance to the nearest background voxel) inside,
    +(distance to the nearest mask voxel) outside; thresholding at 0 gives the mask back."""
    import SimpleITK as sitk
    from scipy import ndimage

    m = sitk.GetArrayFromImage(mask) != 0
    spacing = tuple(reversed(mask.GetSpacing()))
    if not m.any():
        raise InputError("cannot perturb an empty mask")
    inside = ndimage.distance_transform_edt(m, sampling=spacing)
    outside = ndimage.distance_transform_edt(~m, sampling=spacing)
    return np.where(m, -inside, outside)


def _from_array(array: np.ndarray, like):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(like)
    return image


def grow_mask(mask, distance_mm: float):
    """Dilate (> 0) or erode (< 0) a mask by a physical distance, honouring anisotropic spacing.

    Dilation adds background voxels within ``distance_mm`` of a mask voxel; erosion removes mask
    voxels within ``|distance_mm|`` of a background voxel.  An erosion that would empty the mask
    returns the original mask unchanged.
    """
    sdm = _signed_distance(mask)
    d = float(distance_mm)
    out = (sdm <= d) if d >= 0 else (sdm < d)
    if not out.any():
        out = sdm < 0
    return _from_array(out, mask)


def randomise_contour(mask, rng: np.random.Generator, *, sigma_mm: float = 1.0, smoothing_mm: float = 3.0):
    """Move the boundary by a smooth random field (SD ``sigma_mm``, correlation ``smoothing_mm``)."""
    from scipy import ndimage

    sdm = _signed_distance(mask)
    spacing = np.asarray(tuple(reversed(mask.GetSpacing())), float)
    field = ndimage.gaussian_filter(rng.standard_normal(sdm.shape), sigma=smoothing_mm / spacing)
    sd = field.std()
    field = field / sd * sigma_mm if sd > 0 else field
    out = sdm + field < 0
    if not out.any():
        out = sdm < 0
    return _from_array(out, mask)


def _resample_pair(image, mask, transform):
    import SimpleITK as sitk

    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    moved = sitk.Resample(image, image, transform, sitk.sitkLinear, stats.GetMinimum(), sitk.sitkFloat32)
    m = sitk.Resample(sitk.Cast(mask != 0, sitk.sitkFloat32), mask, transform, sitk.sitkLinear, 0.0)
    binary = sitk.Cast(m >= 0.5, sitk.sitkUInt8)
    binary.CopyInformation(mask)
    if not np.any(sitk.GetArrayViewFromImage(binary)):
        raise InputError("perturbation moved the mask out of the image")
    return moved, binary


def translate(image, mask, shift_mm: Sequence[float]):
    """Shift image and mask together relative to the voxel grid (linear interpolation)."""
    import SimpleITK as sitk

    return _resample_pair(image, mask, sitk.TranslationTransform(image.GetDimension(), [float(s) for s in shift_mm]))


def rotate(image, mask, angle_deg: float):
    """Rotate image and mask together in the axial plane about the mask's centroid (3D) or centre (2D)."""
    import SimpleITK as sitk

    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(mask != 0, sitk.sitkUInt8))
    centre = stats.GetCentroid(1)
    angle = np.deg2rad(float(angle_deg))
    if image.GetDimension() == 3:
        transform = sitk.Euler3DTransform(centre, 0.0, 0.0, angle)
    else:
        transform = sitk.Euler2DTransform(centre, angle)
    return _resample_pair(image, mask, transform)


DEFAULT_PERTURBATIONS: dict[str, Any] = {
    "grow_mm": (-0.5, 0.5),
    "contour_noise": 2,  # number of randomised contours
    "contour_sigma_mm": 1.0,
    "translate_voxels": 0.5,  # fraction of a voxel, one diagonal shift
    "rotate_deg": (-5.0, 5.0),
}


def perturbations(image, mask, *, seed: int = 0, config: dict[str, Any] | None = None):
    """Named (image, mask) variants of one case: always the same names and order for every case.

    Includes the unperturbed original first.  Config keys as in :data:`DEFAULT_PERTURBATIONS`.
    """
    cfg = {**DEFAULT_PERTURBATIONS, **(config or {})}
    rng = np.random.default_rng(seed)
    out = [("original", image, mask)]
    for g in cfg["grow_mm"]:
        out.append((f"grow_{g:+g}mm", image, grow_mask(mask, g)))
    for i in range(int(cfg["contour_noise"])):
        out.append((f"contour_{i + 1}", image, randomise_contour(mask, rng, sigma_mm=cfg["contour_sigma_mm"])))
    if cfg["translate_voxels"]:
        shift = [cfg["translate_voxels"] * s for s in image.GetSpacing()]
        out.append(("translate", *translate(image, mask, shift)))
    for a in cfg["rotate_deg"]:
        out.append((f"rotate_{a:+g}deg", *rotate(image, mask, a)))
    return out


def _on_image_grid(mask, image):
    import SimpleITK as sitk

    from ..geometry import Geometry, geometry_differences

    if not geometry_differences(Geometry.of(mask), Geometry.of(image)):
        return mask
    return sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def perturbation_features(store: StudyStore, *, reader: str | None = None, method: str | None = None,
                          images: Sequence[str] = ("dce_early",), timepoints: Sequence[str] | None = None,
                          params=None, config: dict[str, Any] | None = None, seed: int = 0,
                          extractor: Callable | None = None, progress=None, cancel=None):
    """Radiomics of every perturbation of every case -> (long table with ``reader`` = perturbation, failures).

    ``extractor(image, mask) -> {feature: value}`` defaults to
    :func:`NACResponseLib.radiomics.extract` with ``params``.  The single reader's segmentation
    (``reader``/``method``; default: the only manual reader) is perturbed; images on another grid
    (e.g. ADC) get the perturbed mask resampled with nearest neighbour.
    """
    import pandas as pd
    import SimpleITK as sitk

    from ..imageio import read_image, read_mask

    if extractor is None:
        from ..radiomics import extract, load_params

        resolved = params if isinstance(params, dict) else load_params(params)

        def extractor(image, mask):
            return extract(image, mask, resolved, label=1)

    cohort = store.cohort
    if reader is None:
        manual = sorted({s.reader for p in cohort for t in p.timepoints.values() for s in t.segmentations
                         if s.method == (method or "manual")})
        if not manual:
            raise InputError(f"{store.root}: no {method or 'manual'} segmentation to perturb")
        reader = manual[0]
    rows, failed = [], {}
    for patient in cohort:
        for tp in patient.ordered_timepoints():
            if timepoints and tp.name not in timepoints:
                continue
            seg = tp.reference_segmentation(reader=reader, method=method)
            if seg is None:
                continue
            if cancel is not None:
                cancel.check()
            case = f"{patient.patient_id}/{tp.name}"
            try:
                mask = read_mask(store.path(seg.path), label=seg.label)
                mask = sitk.Cast(mask == seg.label, sitk.sitkUInt8)
                case_seed = int(np.random.SeedSequence([seed, zlib.crc32(case.encode())]).generate_state(1)[0])
                for key in images:
                    if not tp.has_image(key):
                        continue
                    image = read_image(store.path(tp.image(key).path))
                    # perturb on each image's own grid (DWI/ADC are coarser than the reference)
                    for name, img, m in perturbations(image, _on_image_grid(mask, image), seed=case_seed,
                                                      config=config):
                        feats = extractor(img, m)
                        rows.append({"patient_id": patient.patient_id, "timepoint": tp.name, "image": key,
                                     "reader": name, "method": "perturbation", "label": 1, **feats})
            except NACError as exc:
                failed[case] = str(exc)
            if progress is not None:
                progress.update(1, case)
    return pd.DataFrame(rows), failed
