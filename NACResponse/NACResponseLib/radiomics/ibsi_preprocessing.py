"""IBSI image processing before pyradiomics: the optional ``ibsi`` section of a parameter set.

pyradiomics' own pre-processing differs from the IBSI reference manual (Zwanenburg et al.,
Radiology 2020; arXiv:1612.07003) in ways it cannot be told to change: its resampled grid is aligned at
the corner of the ROI's bounding box, intensities are not rounded after interpolation, the mask is
resampled by nearest neighbour, fixed-bin-width bins start at ``floor(min / w) * w`` and a range
and a 3-sigma re-segmentation cannot be combined.  With an ``ibsi`` section in the parameter set
this module does those steps the IBSI way and pyradiomics computes every feature from the result:

* the new grid is centred on the original one (IBSI "align grid centres"): ``n' = ceil(n s / s')``;
* the image is interpolated (``interpolator``) and, for CT, rounded to integers (``roundIntensities``);
* the mask is interpolated as a 0/1 image (``maskInterpolator``) and kept where it is >= ``maskThreshold``
  (the morphological mask: shape features);
* the intensity mask keeps the voxels inside ``resegmentRange`` and inside mean +- ``resegmentSigma``
  standard deviations of the interpolated ROI; the intersection of both is one absolute range,
  which pyradiomics applies itself (its ``resegmentRange``), so it still computes shape on the
  morphological mask and everything else on the intensity mask;
* fixed-bin-width bins start at the range's lower bound (the ROI minimum without a range);
* ``firstorder_Kurtosis`` is reported as excess kurtosis and the PCA axis lengths from the sample
  covariance (N - 1), as IBSI defines them.

Without an ``ibsi`` section nothing here runs and pyradiomics' behaviour is untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError

#: Version of our own image handling before pyradiomics (this module's IBSI steps, ``ibsi_definitions``
#: and the extractor's input preparation).  It is part of every radiomics task digest, so bump it
#: whenever that maths changes: stored per-ROI results are then recomputed, not reused.
PREPROCESSING_VERSION = 1

SECTION = "ibsi"
#: Extractor setting that carries the bin origin to pyradiomics' binning (:func:`install_bin_origin`;
#: set per ROI, never in a file).
BIN_ORIGIN = "ibsiBinOrigin"

_INTERPOLATORS = {"nearest": "sitkNearestNeighbor", "linear": "sitkLinear", "bspline": "sitkBSpline"}
_KEYS = ("resampledPixelSpacing", "interpolator", "maskInterpolator", "maskThreshold", "roundIntensities",
         "resegmentRange", "resegmentSigma")
# pyradiomics settings whose step the ibsi section owns (one owner per step)
_CONFLICTS = ("resampledPixelSpacing", "interpolator", "resegmentRange", "resegmentMode", "normalize", "preCrop")


@dataclass(frozen=True)
class IbsiSettings:
    """The parsed ``ibsi`` section (keys as in the parameter file)."""

    spacing: tuple[float, ...] | None = None  # mm per axis (x, y, z); 0 keeps that axis; None: no interpolation
    interpolator: str = "linear"
    mask_interpolator: str = "linear"
    mask_threshold: float = 0.5
    round_intensities: bool = False
    resegment_range: tuple[float, float] | None = None  # (low, high); +-inf for an open side
    resegment_sigma: float | None = None


def parse(section: Any, where: str = "parameter dict") -> IbsiSettings:
    """Validate an ``ibsi`` section (``true``/``{}`` switch IBSI processing on with no interpolation)."""
    if section is True:
        section = {}
    if not isinstance(section, dict):
        raise InputError(f"{where}: the '{SECTION}' section must be a mapping (or true), got {section!r}")
    unknown = sorted(set(section) - set(_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown} in the '{SECTION}' section (known: {list(_KEYS)})")
    spacing = section.get("resampledPixelSpacing")
    if spacing is not None:
        if (not isinstance(spacing, (list, tuple)) or not spacing
                or not all(isinstance(s, (int, float)) and s >= 0 for s in spacing) or not any(spacing)):
            raise InputError(f"{where}: {SECTION}.resampledPixelSpacing must be a list of mm per axis "
                             f"(0 keeps an axis), got {spacing!r}")
        spacing = tuple(float(s) for s in spacing)
    interp = {k: _interpolator(section.get(k, "linear"), f"{where}: {SECTION}.{k}")
              for k in ("interpolator", "maskInterpolator")}
    threshold = section.get("maskThreshold", 0.5)
    if not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise InputError(f"{where}: {SECTION}.maskThreshold must be in (0, 1], got {threshold!r}")
    rounding = section.get("roundIntensities", False)
    if not isinstance(rounding, bool):
        raise InputError(f"{where}: {SECTION}.roundIntensities must be true or false, got {rounding!r}")
    rng = section.get("resegmentRange")
    if rng is not None:
        if (not isinstance(rng, (list, tuple)) or len(rng) != 2
                or not all(v is None or isinstance(v, (int, float)) for v in rng)):
            raise InputError(f"{where}: {SECTION}.resegmentRange must be [low, high] (null for an open side), "
                             f"got {rng!r}")
        low = -math.inf if rng[0] is None else float(rng[0])
        high = math.inf if rng[1] is None else float(rng[1])
        if low > high:
            raise InputError(f"{where}: {SECTION}.resegmentRange {list(rng)}: low is above high")
        rng = (low, high)
    sigma = section.get("resegmentSigma")
    if sigma is not None and (not isinstance(sigma, (int, float)) or sigma <= 0):
        raise InputError(f"{where}: {SECTION}.resegmentSigma must be a positive number, got {sigma!r}")
    return IbsiSettings(spacing, interp["interpolator"], interp["maskInterpolator"], float(threshold), rounding,
                        rng, None if sigma is None else float(sigma))


def _interpolator(name: Any, where: str) -> str:
    key = str(name)
    key = {v: k for k, v in _INTERPOLATORS.items()}.get(key, key)  # sitkLinear -> linear
    if key not in _INTERPOLATORS:
        raise InputError(f"{where}: unknown interpolator {name!r} (choose from {sorted(_INTERPOLATORS)})")
    return key


def check_conflicts(settings: dict[str, Any], where: str) -> None:
    """The ``ibsi`` section owns interpolation and re-segmentation: refuse the pyradiomics keys for them."""
    clash = sorted(k for k in _CONFLICTS if settings.get(k) not in (None, False))
    if clash:
        raise InputError(f"{where}: setting {clash} conflicts with the '{SECTION}' section, which does "
                         f"interpolation and re-segmentation the IBSI way (its keys: {list(_KEYS)}) and has no "
                         "normalisation or cropping step; remove them from 'setting'")


@dataclass
class Preprocessed:
    """What pyradiomics gets: the processed image, the morphological mask (label 1) and the extra
    per-ROI settings (absolute re-segmentation range, bin origin); plus IBSI Diagnostics values."""

    image: Any
    mask: Any
    settings: dict[str, Any]
    n_voxels: int  # morphological mask
    diagnostics: dict[str, float] = field(default_factory=dict)  # IBSI tag -> value (preprocess(diagnostics=True))


def preprocess(image, mask, settings: IbsiSettings, *, label: int = 1, bin_width: float | None = None,
               name: str = "image", diagnostics: bool = False) -> Preprocessed:
    """IBSI interpolation, rounding, mask partial-volume threshold and re-segmentation of one ROI.

    ``bin_width`` is the pyradiomics ``binWidth`` when bins have a fixed width (``None`` for a fixed
    bin count).  ``diagnostics=True`` also fills the IBSI Diagnostics values (image and ROI after
    each step).  Raises :class:`InputError` when no voxel is left after a step.
    """
    import SimpleITK as sitk

    roi = sitk.Cast(mask == label, sitk.sitkFloat32)
    diag: dict[str, float] = {}
    if diagnostics:
        diag.update(_image_diagnostics(image, "init_img"))
        diag.update(_roi_diagnostics(image, roi > 0.5, roi > 0.5, "init_roi"))
    if settings.spacing is not None:
        reference = centred_grid(image, settings.spacing)
        image = _resample(image, reference, settings.interpolator, extrapolate=True)
        if settings.round_intensities:
            image = sitk.Round(image)
    else:
        reference = image
    if settings.spacing is not None or not _same_grid(roi, image):
        roi = _resample(roi, reference, settings.mask_interpolator, extrapolate=False)
    morph = sitk.Cast(roi >= settings.mask_threshold, sitk.sitkUInt32)
    morph.CopyInformation(image)
    if diagnostics:
        diag.update(_image_diagnostics(image, "interp_img"))
        diag.update(_roi_diagnostics(image, morph, morph, "interp_roi"))
    values = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(morph) > 0]
    if values.size == 0:
        raise InputError(f"{name}: no ROI voxel is left after IBSI interpolation (mask partial-volume threshold "
                         f"{settings.mask_threshold})")
    low, high = resegmentation_range(values, settings)
    extra: dict[str, Any] = {}
    kept = values
    if settings.resegment_range is not None or settings.resegment_sigma is not None:
        extra.update(resegmentRange=[low, high], resegmentMode="absolute")
        kept = values[(values >= low) & (values <= high)]
        if kept.size == 0:
            raise InputError(f"{name}: no ROI voxel has an intensity in the IBSI re-segmentation range "
                             f"[{low:g}, {high:g}]")
        if diagnostics:
            reseg = sitk.Cast((image >= low) & (image <= high), sitk.sitkUInt32) * morph
            diag.update(_roi_diagnostics(image, reseg, morph, "reseg_roi"))
    if bin_width is not None:
        rng = settings.resegment_range
        extra[BIN_ORIGIN] = float(rng[0]) if rng is not None and math.isfinite(rng[0]) else float(kept.min())
    return Preprocessed(image, morph, extra, int(values.size), diag)


def resegmentation_range(values: np.ndarray, settings: IbsiSettings) -> tuple[float, float]:
    """The intensity mask's absolute range: the IBSI range intersected with mean +- k sigma of ``values``."""
    low, high = settings.resegment_range or (-math.inf, math.inf)
    if settings.resegment_sigma is not None:
        mean, sd = float(np.mean(values)), float(np.std(values))
        low = max(low, mean - settings.resegment_sigma * sd)
        high = min(high, mean + settings.resegment_sigma * sd)
    return float(low), float(high)


def centred_grid(image, spacing: tuple[float, ...]):
    """An empty image on the IBSI grid: new spacing (0 keeps an axis), ``ceil(n s / s')`` voxels per
    axis, and the same grid centre as ``image`` (same direction)."""
    import SimpleITK as sitk

    old_spacing, old_size = np.array(image.GetSpacing()), np.array(image.GetSize())
    if len(spacing) != len(old_size):
        raise InputError(f"ibsi.resampledPixelSpacing {list(spacing)} has {len(spacing)} values for a "
                         f"{len(old_size)}D image")
    new_spacing = np.where(np.array(spacing) > 0, spacing, old_spacing)
    # round before ceil: 204 x 0.977 / 0.977 must stay 204 despite float noise
    new_size = np.ceil(np.round(old_size * old_spacing / new_spacing, 6)).astype(int)
    direction = np.array(image.GetDirection()).reshape(len(old_size), -1)
    shift = (old_size - 1) * old_spacing / 2 - (new_size - 1) * new_spacing / 2  # along the image axes
    origin = np.array(image.GetOrigin()) + direction @ shift
    reference = sitk.Image([int(n) for n in new_size], sitk.sitkUInt8)
    reference.SetSpacing([float(s) for s in new_spacing])
    reference.SetOrigin([float(o) for o in origin])
    reference.SetDirection(image.GetDirection())
    return reference


def _resample(image, reference, interpolator: str, *, extrapolate: bool):
    """``image`` interpolated onto ``reference``'s grid (float64); outside the original grid either the
    nearest voxel (image) or 0 (mask)."""
    import SimpleITK as sitk

    f = sitk.ResampleImageFilter()
    f.SetReferenceImage(reference)
    f.SetInterpolator(getattr(sitk, _INTERPOLATORS[interpolator]))
    f.SetOutputPixelType(sitk.sitkFloat64)
    f.SetDefaultPixelValue(0.0)
    f.SetUseNearestNeighborExtrapolator(extrapolate)
    return f.Execute(sitk.Cast(image, sitk.sitkFloat64))


def _same_grid(a, b) -> bool:
    from ..geometry import Geometry, geometry_differences

    return not geometry_differences(Geometry.of(a), Geometry.of(b))


_AXES = "xyz"


def _image_diagnostics(image, stage: str) -> dict[str, float]:
    import SimpleITK as sitk

    values = sitk.GetArrayViewFromImage(image)
    out = {f"img_dim_{a}_{stage}": float(n) for a, n in zip(_AXES, image.GetSize())}
    out.update({f"vox_dim_{a}_{stage}": float(s) for a, s in zip(_AXES, image.GetSpacing())})
    out.update({f"mean_int_{stage}": float(values.mean()), f"min_int_{stage}": float(values.min()),
                f"max_int_{stage}": float(values.max())})
    return out


def _roi_diagnostics(image, intensity_mask, morph_mask, stage: str) -> dict[str, float]:
    """IBSI Diagnostics rows of one processing step (tags as in the IBSI reference tables)."""
    import SimpleITK as sitk

    values = sitk.GetArrayViewFromImage(image)
    out = {f"int_mask_dim_{a}_{stage}": float(n) for a, n in zip(_AXES, image.GetSize())}
    for kind, m in (("int", intensity_mask), ("morph", morph_mask)):
        inside = sitk.GetArrayViewFromImage(m) > 0
        out[f"{kind}_mask_vox_count_{stage}"] = float(np.count_nonzero(inside))
        where = np.nonzero(inside)[::-1]  # array order is (z,) y, x
        for a, index in zip(_AXES, where):
            out[f"{kind}_mask_bb_dim_{a}_{stage}"] = float(index.max() - index.min() + 1) if index.size else 0.0
        if kind == "int" and inside.any():
            out.update({f"int_mask_mean_int_{stage}": float(values[inside].mean()),
                        f"int_mask_min_int_{stage}": float(values[inside].min()),
                        f"int_mask_max_int_{stage}": float(values[inside].max())})
    return out


def ibsi_definitions(features: dict[str, float], n_voxels: int) -> dict[str, float]:
    """Report the features whose IBSI definition differs from pyradiomics' by a closed form:
    excess kurtosis (- 3) for every image type, PCA axis lengths from the sample covariance
    (x sqrt(N / (N - 1)), N = voxels of the morphological mask)."""
    out = dict(features)
    for name in out:
        if name.endswith("_firstorder_Kurtosis"):
            out[name] -= 3.0
        elif name.endswith(("_shape_MajorAxisLength", "_shape_MinorAxisLength", "_shape_LeastAxisLength")):
            if n_voxels > 1:
                out[name] *= math.sqrt(n_voxels / (n_voxels - 1))
    return out


def install_bin_origin() -> None:
    """Let pyradiomics' fixed-bin-width discretisation start at the setting :data:`BIN_ORIGIN`.

    pyradiomics bins from ``floor(min / w) * w`` and has no option for another origin; its feature
    classes find the edges through ``radiomics.imageoperations.getBinEdges``, which this wraps.
    Without the setting (every parameter set without an ``ibsi`` section) the wrapper calls
    pyradiomics' own function unchanged.
    """
    from radiomics import imageoperations

    if getattr(imageoperations.getBinEdges, "_ibsi_origin", False):
        return
    original = imageoperations.getBinEdges

    def getBinEdges(parameterValues, **kwargs):  # noqa: N802, N803 (pyradiomics' names)
        origin = kwargs.get(BIN_ORIGIN)
        if origin is None or kwargs.get("binCount") is not None:
            return original(parameterValues, **kwargs)
        width = kwargs.get("binWidth", 25)
        # IBSI: grey level = floor((x - origin) / w) + 1, i.e. numpy.digitize with these edges
        return origin + width * np.arange(int(np.floor((np.max(parameterValues) - origin) / width)) + 2)

    getBinEdges._ibsi_origin = True
    getBinEdges.__doc__ = original.__doc__
    imageoperations.getBinEdges = getBinEdges


def roi_extractor(extractor, pre: Preprocessed):
    """A shallow copy of a cached extractor with this ROI's settings (the cached one stays as it is,
    so concurrent threads do not share per-ROI state).  The bin origin is given to the Original
    image only: filtered images have their own intensity scale."""
    import copy

    install_bin_origin()
    roi = copy.copy(extractor)
    roi.settings = {**extractor.settings, **{k: v for k, v in pre.settings.items() if k != BIN_ORIGIN}}
    if BIN_ORIGIN in pre.settings and "Original" in extractor.enabledImagetypes:
        roi.enabledImagetypes = {**extractor.enabledImagetypes,
                                 "Original": {**extractor.enabledImagetypes["Original"],
                                              BIN_ORIGIN: pre.settings[BIN_ORIGIN]}}
    return roi
