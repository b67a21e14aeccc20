"""From volumes and a tumour mask to the 3x224x224 ResNet input (the 2.5D protocol).

Steps: every channel image is resampled onto the grid of the first channel (the DCE
reference), the mask too (nearest neighbour) when its grid differs; the axial slice with
the largest tumour cross-section is chosen (optionally averaged with its +-1 neighbours);
a square window of physical size around the tumour (plus a margin) is sampled onto 224x224
(bilinear, pixel spacing respected, zero outside the image); each channel is scaled to
[0, 1] by its 1st-99th percentile inside the window, then ImageNet-normalised.

The window is kept (:class:`CropWindow`) so a Grad-CAM map can be drawn back onto the source
slice.  Arrays are in SimpleITK order (z, y, x); "axial" is the z (third image) axis.
2D images (ultrasound, mammography ROIs) take the same path as a one-slice volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..geometry import Geometry, geometry_differences

INPUT_SIZE = 224
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
DEFAULT_MARGIN_MM = 10.0
PERCENTILES = (1.0, 99.0)


def largest_slice_index(mask: np.ndarray) -> int:
    """Index along axis 0 of the slice with the most mask voxels.

    Ties go to the slice nearest the mask's centre of mass along that axis, then to the lower index.
    """
    mask = np.asarray(mask) != 0
    if mask.ndim == 2:
        mask = mask[None]
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
    if not areas.any():
        raise InputError("mask is empty: no tumour cross-section to choose a slice from")
    candidates = np.flatnonzero(areas == areas.max())
    centre = float(np.average(np.arange(len(areas)), weights=areas))
    return int(candidates[np.argmin(np.abs(candidates - centre))])


def as_volume(image: sitk.Image) -> sitk.Image:
    """A 2D image as a one-slice 3D image (so 2D ROIs share the volume path)."""
    if image.GetDimension() == 3:
        return image
    if image.GetDimension() != 2:
        raise InputError(f"expected a 2D or 3D image, got {image.GetDimension()}D")
    return sitk.JoinSeries([image])


def resample_to(image: sitk.Image, reference: sitk.Image, *, is_mask: bool = False) -> sitk.Image:
    """``image`` on ``reference``'s voxel grid (linear for intensities, nearest for masks; 0 outside)."""
    if not geometry_differences(Geometry.of(image), Geometry.of(reference)):
        return image
    interpolator = sitk.sitkNearestNeighbor if is_mask else sitk.sitkLinear
    pixel = image.GetPixelID() if is_mask else sitk.sitkFloat32
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, 0.0, pixel)


@dataclass
class CropWindow:
    """A square physical window on one axial slice, sampled onto ``size`` x ``size`` pixels.

    ``centre`` is (row, column) in voxel indices; ``half_mm`` the half side in millimetres;
    ``spacing`` the (row, column) pixel spacing in millimetres.
    """

    centre: tuple[float, float]
    half_mm: float
    spacing: tuple[float, float]
    size: int = INPUT_SIZE

    def coordinates(self) -> np.ndarray:
        """(2, size, size) source (row, column) coordinates of the output pixel centres."""
        offsets = -self.half_mm + (np.arange(self.size) + 0.5) * (2 * self.half_mm / self.size)
        rows = self.centre[0] + offsets / self.spacing[0]
        cols = self.centre[1] + offsets / self.spacing[1]
        return np.stack(np.meshgrid(rows, cols, indexing="ij"))

    def sample(self, plane: np.ndarray, order: int = 1) -> np.ndarray:
        """The window's pixels from ``plane``.  Intensities (``order`` >= 1) are low-pass filtered
        first where the window's pixels are coarser than the source's, so fine texture (0.1 mm
        ultrasound speckle sampled at 0.4 mm) is averaged instead of aliased; Gaussian sigma
        (factor - 1) / 2 source pixels per axis, the rule of scikit-image's ``rescale``.  Labels
        (``order`` 0) are sampled as they are."""
        from scipy.ndimage import gaussian_filter, map_coordinates

        plane = np.asarray(plane, dtype=np.float32)
        coords = self.coordinates()
        step_mm = 2 * self.half_mm / self.size
        sigma = [max(0.0, (step_mm / sp - 1.0) / 2.0) for sp in self.spacing]
        if order > 0 and max(sigma) > 0:
            # filter only the patch the window reads (plus the kernel's reach), not the whole plane
            reach = [int(np.ceil(4 * sg)) + 2 for sg in sigma]
            lo = [max(0, int(np.floor(coords[a].min())) - reach[a]) for a in (0, 1)]
            hi = [min(plane.shape[a], int(np.ceil(coords[a].max())) + reach[a] + 1) for a in (0, 1)]
            if hi[0] > lo[0] and hi[1] > lo[1]:
                # zeros around the patch stand for "outside the plane", as map_coordinates' cval; inside
                # the plane the reach keeps them beyond the kernel of every sampled pixel
                patch = np.pad(plane[lo[0]:hi[0], lo[1]:hi[1]], [(reach[0],) * 2, (reach[1],) * 2])
                patch = gaussian_filter(patch, sigma, mode="constant", cval=0.0)
                origin = np.array([lo[0] - reach[0], lo[1] - reach[1]], dtype=float)[:, None, None]
                return map_coordinates(patch, coords - origin, order=order, mode="constant",
                                       cval=0.0).astype(np.float32)
        return map_coordinates(plane, coords, order=order, mode="constant", cval=0.0).astype(np.float32)

    def to_source(self, window_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Draw a map given on the window (any square size) back onto a source slice of ``shape``.

        Source pixels outside the window are 0; inside, the map is interpolated bilinearly.
        """
        from scipy.ndimage import map_coordinates

        window_map = np.asarray(window_map, dtype=np.float32)
        n = window_map.shape[0]
        rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        # physical offset from the centre -> continuous index into the window map
        u = ((rows - self.centre[0]) * self.spacing[0] + self.half_mm) * n / (2 * self.half_mm) - 0.5
        v = ((cols - self.centre[1]) * self.spacing[1] + self.half_mm) * n / (2 * self.half_mm) - 0.5
        out = map_coordinates(window_map, np.stack([u, v]), order=1, mode="nearest")
        inside = (u >= -0.5) & (u <= n - 0.5) & (v >= -0.5) & (v <= n - 0.5)
        return np.where(inside, out, 0.0).astype(np.float32)


def crop_window(mask_plane: np.ndarray, spacing: tuple[float, float], *, margin_mm: float = DEFAULT_MARGIN_MM,
                size: int = INPUT_SIZE) -> CropWindow:
    """Square window around the tumour's bounding box on one slice, plus ``margin_mm`` each side."""
    rows, cols = np.nonzero(np.asarray(mask_plane))
    if rows.size == 0:
        raise InputError("mask is empty on the chosen slice")
    centre = ((rows.min() + rows.max()) / 2.0, (cols.min() + cols.max()) / 2.0)
    extent_mm = max((rows.max() - rows.min() + 1) * spacing[0], (cols.max() - cols.min() + 1) * spacing[1])
    return CropWindow(centre=(float(centre[0]), float(centre[1])), half_mm=float(extent_mm / 2 + margin_mm),
                      spacing=(float(spacing[0]), float(spacing[1])), size=size)


def scale_unit(window: np.ndarray, percentiles: tuple[float, float] = PERCENTILES) -> np.ndarray:
    """Map a channel to [0, 1] by its percentiles (robust to the scanner's arbitrary units)."""
    lo, hi = np.percentile(window, percentiles)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros_like(window, dtype=np.float32)
    return np.clip((window - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def imagenet_normalise(unit: np.ndarray) -> np.ndarray:
    """(3, H, W) in [0, 1] -> ImageNet mean/std normalised (what torchvision's weights expect)."""
    return ((unit - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]).astype(np.float32)


@dataclass
class SliceInput:
    """One network input with what is needed to trace it back to the source."""

    array: np.ndarray  # (3, size, size) float32, ImageNet-normalised
    mask: np.ndarray  # (size, size) uint8: the tumour in the window
    slice_index: int  # axial index on the reference grid
    slices: list[int]  # slices averaged (the index, or index-1..index+1)
    window: CropWindow
    reference: sitk.Image = field(repr=False)  # grid of the first channel (for writing maps)
    channels: list[str] = field(default_factory=list)


def prepare_input(images: list[sitk.Image], mask: sitk.Image, *, names: list[str] | None = None,
                  average_neighbours: bool = False, margin_mm: float = DEFAULT_MARGIN_MM,
                  size: int = INPUT_SIZE, label: int | None = None, half_mm: float | None = None) -> SliceInput:
    """Build the 3-channel input from 1-3 images (fewer than 3 are repeated) and a mask.

    ``images[0]`` defines the grid; the others and the mask are resampled onto it.
    ``label`` None means any non-zero voxel is tumour.  ``half_mm`` fixes the window's half side
    (e.g. the baseline's, so a shrinking tumour looks smaller at the next timepoint).
    """
    if not 1 <= len(images) <= 3:
        raise InputError(f"need 1 to 3 channel images, got {len(images)}")
    names = list(names or [f"channel{i}" for i in range(len(images))])
    reference = as_volume(images[0])
    volumes = [sitk.GetArrayFromImage(resample_to(as_volume(im), reference)).astype(np.float32) for im in images]
    mask_array = sitk.GetArrayFromImage(resample_to(as_volume(mask), reference, is_mask=True))
    mask_array = (mask_array == label) if label is not None else (mask_array != 0)
    if not mask_array.any():
        raise InputError("mask is empty on the reference grid (no tumour voxel after resampling)")
    index = largest_slice_index(mask_array)
    slices = [s for s in (index - 1, index, index + 1) if 0 <= s < mask_array.shape[0]] if average_neighbours \
        else [index]
    spacing = reference.GetSpacing()  # (x, y, z): pixel spacing (row, column) = (y, x)
    window = crop_window(mask_array[index], (spacing[1], spacing[0]), margin_mm=margin_mm, size=size)
    if half_mm is not None:
        window = replace(window, half_mm=float(half_mm))
    channels = []
    for volume in volumes:
        plane = volume[slices].mean(axis=0)
        channels.append(scale_unit(window.sample(plane)))
    while len(channels) < 3:
        channels.append(channels[-1])
        names.append(names[-1])
    crop_mask = (window.sample(mask_array[index].astype(np.float32), order=0) > 0.5).astype(np.uint8)
    return SliceInput(array=imagenet_normalise(np.stack(channels)), mask=crop_mask, slice_index=index,
                      slices=slices, window=window, reference=reference, channels=names)


def map_to_reference(window_map: np.ndarray, item: SliceInput) -> sitk.Image:
    """A window map (e.g. Grad-CAM) as a float image on the reference grid: set on the chosen
    slice(s), 0 elsewhere, so a viewer overlays it on the source volume."""
    ref = item.reference
    size = ref.GetSize()
    plane = item.window.to_source(window_map, (size[1], size[0]))
    volume = np.zeros((size[2], size[1], size[0]), dtype=np.float32)
    for s in item.slices:
        volume[s] = plane
    out = sitk.GetImageFromArray(volume)
    out.CopyInformation(ref)
    return out
