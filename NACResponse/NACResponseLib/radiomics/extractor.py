"""One (image, mask) -> feature vector, through pyradiomics' ``RadiomicsFeatureExtractor``.

We do not compute any feature ourselves.  This module adds what pyradiomics leaves to the caller:
input checks with errors that name the files (empty mask, one-voxel ROI, absent label, geometry
mismatch, NaN voxels, 2D/3D mix), a per-process cache of configured extractors, plain float
results without the ``diagnostics_*`` entries and, when the parameter set has an ``ibsi`` section,
the IBSI pre-processing of :mod:`.ibsi_preprocessing` before pyradiomics runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GeometryMismatchError, InputError
from .params import ibsi_settings, load_params, params_hash, pyradiomics_params, quiet_pyradiomics, settings

_extractors: dict[str, Any] = {}


def get_extractor(params: dict[str, Any]):
    """A configured ``RadiomicsFeatureExtractor`` (``ibsi`` section ignored), cached per process by
    parameter hash.

    Its ``additionalInfo`` (the ``diagnostics_*`` entries: image and mask hashes, statistics and
    connected components, before and after resampling) is switched off: we drop those entries
    anyway, they cost about 3 % of an extraction, and feature values do not depend on them.
    """
    params = pyradiomics_params(params)
    key = params_hash(params)
    if key not in _extractors:
        quiet_pyradiomics()
        import copy

        from radiomics.featureextractor import RadiomicsFeatureExtractor

        extractor = RadiomicsFeatureExtractor(copy.deepcopy(params))
        extractor.settings["additionalInfo"] = False
        _extractors[key] = extractor
    return _extractors[key]


def _load(obj, name: str | None, what: str):
    """Read a path or accept a SimpleITK image; returns (image, display name)."""
    import SimpleITK as sitk

    from ..imageio import read_image

    if isinstance(obj, sitk.Image):
        return obj, name or f"<{what} image>"
    return read_image(obj, allow_nan=True), name or str(obj)


def check_inputs(image, mask, *, label: int, image_name: str, mask_name: str,
                 allow_grid_mismatch: bool = False) -> None:
    """Raise :class:`InputError`/:class:`GeometryMismatchError` for inputs pyradiomics cannot use sensibly."""
    import SimpleITK as sitk

    from ..geometry import check_same_geometry

    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{image_name}: radiomics needs a scalar image (this one has "
                         f"{image.GetNumberOfComponentsPerPixel()} components per voxel)")
    values = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(values.dtype, np.floating):
        n_bad = int(np.count_nonzero(~np.isfinite(values)))
        if n_bad:
            raise InputError(f"{image_name}: {n_bad} voxels are NaN or infinite; radiomics needs finite intensities")
    if image.GetDimension() != mask.GetDimension():
        raise InputError(f"2D/3D mix: image {image_name} is {image.GetDimension()}D but mask {mask_name} is "
                         f"{mask.GetDimension()}D; use a mask with the image's dimension")
    labels = sitk.GetArrayViewFromImage(mask)
    if np.issubdtype(labels.dtype, np.floating) and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise InputError(f"{mask_name}: mask has non-integer values; a mask must be a label map")
    n_label = int(np.count_nonzero(labels == label))
    if n_label == 0:
        if not np.any(labels):
            raise InputError(f"{mask_name}: mask is empty (no non-zero voxel)")
        present = np.unique(labels[labels != 0])[:10].tolist()
        raise InputError(f"{mask_name}: label {label} absent from mask (labels present: {present})")
    if n_label == 1:
        raise InputError(f"{mask_name}: label {label} covers a single voxel; texture and shape features "
                         "need at least 2 voxels (check the segmentation)")
    if not allow_grid_mismatch:
        check_same_geometry(image, mask, image_name, mask_name)


def extract(image, mask, params: dict[str, Any] | str | Path | None = None, *, label: int | None = None,
            image_name: str | None = None, mask_name: str | None = None) -> dict[str, float]:
    """Features of one ROI: ``{pyradiomics feature name: value}`` (diagnostics dropped).

    ``image``/``mask`` are paths or SimpleITK images; ``params`` a parameter dict, a shipped
    name or a parameter file (default: the breast protocol).  ``label`` defaults to the
    parameter file's ``label`` setting.  The mask must share the image's grid unless the
    parameters set pyradiomics' ``correctMask`` (then pyradiomics resamples it, or in IBSI mode the
    IBSI mask interpolation does).
    """
    import SimpleITK as sitk

    if not isinstance(params, dict):
        params = load_params(params)
    label = int(label if label is not None else settings(params).get("label", 1))
    image, image_name = _load(image, image_name, "input")
    mask, mask_name = _load(mask, mask_name, "mask")
    check_inputs(image, mask, label=label, image_name=image_name, mask_name=mask_name,
                 allow_grid_mismatch=bool(settings(params).get("correctMask")))
    if mask.GetPixelID() != sitk.sitkUInt32:
        mask = sitk.Cast(mask, sitk.sitkUInt32)  # integral values checked above; pyradiomics' own tests use UInt32
    extractor = get_extractor(params)
    ibsi = ibsi_settings(params)
    if ibsi is not None:
        from .ibsi_preprocessing import preprocess, roi_extractor

        s = settings(params)
        pre = preprocess(image, mask, ibsi, label=label, name=mask_name,
                         bin_width=None if s.get("binCount") else float(s.get("binWidth", 25)))
        image, mask, label = pre.image, pre.mask, 1
        extractor = roi_extractor(extractor, pre)
    try:
        result = extractor.execute(image, mask, label=label)
    except (ValueError, RuntimeError, AssertionError) as exc:
        # pyradiomics raises ValueError for ROIs it cannot use (too small after resampling,
        # outside the image, wrong dimensionality for force2D, ...).
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if "geometr" in detail.lower() or "physical space" in detail.lower():
            raise GeometryMismatchError(f"{image_name} / {mask_name}: {detail}") from None
        raise InputError(f"{image_name} / {mask_name}: pyradiomics cannot extract this ROI ({detail})") from None
    features = {name: _real(name, value, mask_name) for name, value in result.items()
                if not name.startswith("diagnostics_")}
    if ibsi is not None:
        from .ibsi_preprocessing import ibsi_definitions

        features = ibsi_definitions(features, pre.n_voxels)
    return features


def _real(name: str, value, where: str) -> float:
    """A feature value as a float.

    pyradiomics' shape class finds the principal axes with ``numpy.linalg.eigvals``, the solver for
    general matrices, on the symmetric covariance of the voxel coordinates.  When two principal
    moments are (nearly) equal, e.g. for a round lesion, it can return a complex-conjugate pair with
    imaginary parts of ~1e-17, so the axis lengths, elongation and flatness come back complex
    (``float()`` then drops the imaginary part with a ComplexWarning).  Such parts are rounding and
    are dropped here on purpose; a larger one would be a real error and is refused.
    """
    if np.iscomplexobj(value):
        z = complex(np.asarray(value).item())
        if abs(z.imag) > 1e-9 * max(1.0, abs(z.real)):
            raise InputError(f"{where}: pyradiomics returned the complex value {z} for {name}")
        return z.real
    return float(value)


def extract_task(image: str, mask: str, params: dict[str, Any], label: int = 1, image_name: str | None = None,
                 mask_name: str | None = None) -> dict[str, float]:
    """Runner entry point (importable by name in worker processes and Dask workers)."""
    return extract(image, mask, params, label=label, image_name=image_name, mask_name=mask_name)
