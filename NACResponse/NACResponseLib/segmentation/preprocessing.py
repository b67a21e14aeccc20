"""From a case's image files to the network's input: channels, RAS grid, fixed spacing, z-score.

The network grid is the reference channel's volume reoriented to RAS (a lossless axis permutation)
and resampled to a fixed spacing that covers the same physical extent.  Arrays handed to the
network are in (channel, x, y, z) order, as MONAI's own image loaders give them, so that MONAI
tooling reading the bundle sees the orientation it expects.  Predictions go back to the original
grid by linear interpolation of the probability, which keeps the geometry round trip exact to
within interpolation (tested on real MR volumes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..imageio import read_image

NORMALISATIONS = ("zscore_joint", "zscore_channel")


@dataclass(frozen=True)
class PreprocessConfig:
    """How images become network input (recorded in the bundle; inference must match training)."""

    channels: tuple[str, ...] = ("dce_pre", "dce_early")
    spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)  # x, y, z in mm (RAS grid)
    orientation: str = "RAS"
    # zscore_joint: one mean/sd over all channels inside the body, which keeps the enhancement
    # (early - pre) visible to the network; zscore_channel: each channel on its own.
    normalisation: str = "zscore_joint"
    body_fraction: float = 0.1  # body = channel mean > this fraction of its 99th percentile

    def __post_init__(self):
        if not self.channels:
            raise ValueError("at least one input channel is needed")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"spacing must be three positive numbers (mm), got {self.spacing}")

    @property
    def reference_channel(self) -> str:
        """The channel whose grid the output mask shares (early post-contrast when used)."""
        return "dce_early" if "dce_early" in self.channels else self.channels[0]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"], d["spacing"] = list(self.channels), list(self.spacing)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PreprocessConfig:
        d = dict(d)
        d["channels"], d["spacing"] = tuple(d["channels"]), tuple(float(s) for s in d["spacing"])
        return cls(**d)


@dataclass
class PreparedCase:
    """Network input for one case plus what is needed to map results back."""

    array: np.ndarray  # (C, X, Y, Z) float32, normalised
    body: np.ndarray  # (X, Y, Z) bool
    grid: sitk.Image  # network-grid reference image (float32, values unused)
    reference: sitk.Image  # the reference channel on its original grid
    name: str = "case"


# ---- grids --------------------------------------------------------------------------------------
def network_grid(image: sitk.Image, spacing: Sequence[float], orientation: str = "RAS") -> sitk.Image:
    """An empty image on the network grid of ``image``: reoriented, resampled, same extent."""
    oriented = sitk.DICOMOrient(image, orientation)
    old_sp = np.asarray(oriented.GetSpacing(), float)
    new_sp = np.asarray(spacing, float)
    extent = np.asarray(oriented.GetSize()) * old_sp
    size = np.maximum(1, np.ceil(extent / new_sp - 1e-3)).astype(int)
    direction = np.asarray(oriented.GetDirection(), float).reshape(3, 3)
    # Align the outer edge of the first voxel of both grids.
    origin = np.asarray(oriented.GetOrigin(), float) + direction @ ((new_sp - old_sp) / 2.0)
    grid = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    grid.SetSpacing(tuple(float(s) for s in new_sp))
    grid.SetOrigin(tuple(float(o) for o in origin))
    grid.SetDirection(oriented.GetDirection())
    return grid


def resample_to(image: sitk.Image, reference: sitk.Image, *, linear: bool = True) -> sitk.Image:
    """``image`` on the grid of ``reference`` (float32, zero outside the source)."""
    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    return sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), reference, sitk.Transform(), interpolator, 0.0,
                         sitk.sitkFloat32)


def to_network_array(image: sitk.Image) -> np.ndarray:
    """SimpleITK (z, y, x) array -> (x, y, z), the MONAI convention."""
    return np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))


def from_network_array(array: np.ndarray, grid: sitk.Image) -> sitk.Image:
    """(x, y, z) array on the network grid -> SimpleITK image with that grid's geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    image.CopyInformation(grid)
    return image


# ---- channels -----------------------------------------------------------------------------------
ChannelSources = Mapping[str, "str | Path | sitk.Image"] | Sequence["str | Path | sitk.Image"]


def collect_channels(sources: ChannelSources, channels: Sequence[str], name: str = "case") -> dict[str, sitk.Image]:
    """Images for the model's channels, by key; a missing channel or a wrong count is an InputError.

    ``sources`` is a mapping image key -> path/image (extra keys are ignored) or a sequence in the
    model's channel order (its length must equal the number of channels).
    """
    if isinstance(sources, Mapping):
        missing = [c for c in channels if c not in sources]
        if missing:
            raise InputError(f"{name}: the model needs channel(s) {missing}, missing here "
                             f"(available: {sorted(sources)}; model channels: {list(channels)})")
        items = {c: sources[c] for c in channels}
    else:
        sources = list(sources)
        if len(sources) != len(channels):
            raise InputError(f"{name}: the model expects {len(channels)} input channel(s) {list(channels)}, "
                             f"got {len(sources)}")
        items = dict(zip(channels, sources))
    out = {}
    for key, src in items.items():
        image = src if isinstance(src, sitk.Image) else read_image(src)
        where = f"{name} channel {key}" + ("" if isinstance(src, sitk.Image) else f" ({src})")
        if image.GetDimension() != 3:
            raise InputError(f"{where}: a 3D image is needed, got {image.GetDimension()}D")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(f"{where}: one value per voxel is needed, got "
                             f"{image.GetNumberOfComponentsPerPixel()} components")
        out[key] = image
    return out


def body_mask(stack: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Voxels inside the body (breast): channel mean above ``fraction`` of its 99th percentile."""
    mean = stack.mean(axis=0)
    high = float(np.percentile(mean, 99))
    return mean > fraction * high if high > 0 else np.zeros(mean.shape, bool)


def normalise(stack: np.ndarray, body: np.ndarray, mode: str) -> np.ndarray:
    """Z-score inside the body: jointly over all channels or per channel."""
    region = body if body.any() else np.ones(body.shape, bool)
    out = np.empty_like(stack, dtype=np.float32)
    if mode == "zscore_joint":
        values = stack[:, region]
        mu, sd = float(values.mean()), float(values.std())
        out[:] = (stack - mu) / (sd if sd > 0 else 1.0)
    elif mode == "zscore_channel":
        for c in range(stack.shape[0]):
            values = stack[c][region]
            mu, sd = float(values.mean()), float(values.std())
            out[c] = (stack[c] - mu) / (sd if sd > 0 else 1.0)
    else:
        raise ValueError(f"unknown normalisation {mode!r}")
    return out


def prepare_case(sources: ChannelSources, config: PreprocessConfig, name: str = "case") -> PreparedCase:
    """Read (or take) the channels, put them on the network grid and normalise them."""
    images = collect_channels(sources, config.channels, name)
    reference = images[config.reference_channel]
    grid = network_grid(reference, config.spacing, config.orientation)
    # Every channel is interpolated from its own grid (e.g. a coarser DWI) onto the network grid.
    layers = [to_network_array(resample_to(images[key], grid)) for key in config.channels]
    stack = np.stack(layers).astype(np.float32)
    body = body_mask(stack, config.body_fraction)
    return PreparedCase(normalise(stack, body, config.normalisation), body, grid, reference, name)


def label_on_grid(mask: sitk.Image, grid: sitk.Image, label: int | None = 1) -> np.ndarray:
    """A label map on the network grid, (x, y, z) uint8, by linear interpolation + 0.5 threshold."""
    binary = (mask == label) if label is not None else (mask > 0)
    return (to_network_array(resample_to(binary, grid)) >= 0.5).astype(np.uint8)
