"""Reading and writing images and masks with errors that name the file and the problem.

SimpleITK is the single image library of the core.  Readers refuse unknown formats, files holding
fewer pixel bytes than their header claims (ITK would pad them with zeros; see imageheaders.py),
NaN voxels, empty masks and masks whose grid differs from their image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .atomic import atomic_write_with
from .errors import InputError
from .geometry import check_same_geometry
from .imageheaders import check_image_file

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def has_image_suffix(path: str | Path) -> bool:
    name = str(path).lower()
    return any(name.endswith(s) for s in IMAGE_SUFFIXES)


def read_image(path: str | Path, *, allow_nan: bool = False) -> sitk.Image:
    """Read an image file; raise :class:`InputError` for a missing, unknown, truncated, corrupt or NaN file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if not has_image_suffix(path):
        raise InputError(f"{path}: unknown image format (no reader for this extension; use one of {IMAGE_SUFFIXES})")
    check_image_file(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise InputError(f"{path}: cannot read image ({first})") from None
    if not allow_nan and image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        array = sitk.GetArrayViewFromImage(image)
        n_bad = int(np.count_nonzero(~np.isfinite(array)))
        if n_bad:
            raise InputError(f"{path}: {n_bad} voxels are NaN or infinite")
    return image


def read_mask(path: str | Path, *, label: int | None = 1, reference: sitk.Image | None = None,
              reference_name: str | None = None) -> sitk.Image:
    """Read a label map, check it against its reference image and that ``label`` is present.

    Returns the label map as stored (not binarised), so pyradiomics can pick its own label.
    """
    mask = read_image(path)
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: a mask must have one component per voxel")
    array = sitk.GetArrayViewFromImage(mask)
    if not np.any(array):
        raise InputError(f"{path}: mask is empty (no non-zero voxel)")
    if label is not None and not np.any(array == label):
        present = np.unique(array[array != 0])[:10].tolist()
        raise InputError(f"{path}: label {label} absent from mask (labels present: {present})")
    if reference is not None:
        check_same_geometry(reference, mask, reference_name or "image", str(path))
    return mask


def write_image(image: sitk.Image, path: str | Path, *, compress: bool = True) -> None:
    """Write atomically; the extension chooses the format."""
    atomic_write_with(path, lambda tmp: sitk.WriteImage(image, str(tmp), compress))


def array_to_image(array: np.ndarray, spacing, origin=None, direction=None) -> sitk.Image:
    """numpy array in SimpleITK (z, y, x) order -> image with the given geometry (x, y, z order)."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing))
    if origin is not None:
        image.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        image.SetDirection(tuple(float(d) for d in direction))
    return image
