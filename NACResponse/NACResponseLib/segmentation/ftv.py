"""Functional tumour volume (FTV) from three-timepoint DCE-MRI, as in the I-SPY trials.

Per voxel, with S0 / S1 / S2 the pre-contrast, early and late post-contrast signals:

* percent enhancement   PE  = 100 (S1 - S0) / S0
* signal enhancement ratio SER = (S1 - S0) / (S2 - S0)

A voxel belongs to the FTV when it lies inside the user's box, outside every omit region, its
pre-contrast signal exceeds the background threshold (``background_percent`` of a robust maximum,
the 95th percentile of S0 over the whole image; this drops air and noise where PE is unstable),
its PE reaches ``pe_threshold`` (70 % by default) and its SER reaches ``ser_threshold`` (0 = off).
A connectivity filter then removes 3D components (26-connected) smaller than
``min_component_voxels``.  SER subvolumes use the usual kinetic classes: persistent (< 0.9),
plateau (0.9-1.1) and washout (> 1.1).  Needs no trained model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputError
from ..geometry import check_same_geometry

SER_MAX = 3.0  # SER is capped here (washout so steep that S2 <= S0)
SER_CLASSES = {"persistent": (0.0, 0.9), "plateau": (0.9, 1.1), "washout": (1.1, np.inf)}

Box = Sequence[int]  # (x0, y0, z0, x1, y1, z1) voxel indices, half-open


@dataclass(frozen=True)
class FTVConfig:
    pe_threshold: float = 70.0  # percent
    ser_threshold: float = 0.0  # SER lower bound for inclusion (0 = no SER criterion)
    background_percent: float = 30.0  # of the 95th percentile of pre-contrast intensity
    min_component_voxels: int = 10  # connectivity filter (26-connected components)
    largest_component_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FTVResult:
    mask: sitk.Image  # uint8, on the DCE grid
    pe: sitk.Image  # float32, percent
    ser: sitk.Image  # float32, 0..SER_MAX
    volume_cm3: float
    n_voxels: int
    ser_volumes_cm3: dict[str, float] = field(default_factory=dict)
    background_threshold: float = 0.0


def enhancement_maps(pre: np.ndarray, early: np.ndarray, late: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PE (percent) and SER (capped to 0..SER_MAX) maps; undefined voxels get 0."""
    pre, early, late = (np.asarray(a, np.float64) for a in (pre, early, late))
    wash_in = early - pre
    with np.errstate(divide="ignore", invalid="ignore"):
        pe = np.where(pre > 0, 100.0 * wash_in / pre, 0.0)
        late_gain = late - pre
        ser = np.where(late_gain > 0, wash_in / late_gain, np.where(wash_in > 0, SER_MAX, 0.0))
    return pe.astype(np.float32), np.clip(ser, 0.0, SER_MAX).astype(np.float32)


def _box_mask(shape_zyx, box: Box | None, name: str) -> np.ndarray:
    out = np.zeros(shape_zyx, bool)
    if box is None:
        out[:] = True
        return out
    if len(box) != 6:
        raise InputError(f"{name} must be six voxel indices (x0, y0, z0, x1, y1, z1), got {list(box)}")
    x0, y0, z0, x1, y1, z1 = (int(v) for v in box)
    nz, ny, nx = shape_zyx
    if not (0 <= x0 < x1 <= nx and 0 <= y0 < y1 <= ny and 0 <= z0 < z1 <= nz):
        raise InputError(f"{name} {list(box)} is empty or outside the image (size x={nx}, y={ny}, z={nz})")
    out[z0:z1, y0:y1, x0:x1] = True
    return out


def box_from_mm(image: sitk.Image, corner_a_mm: Sequence[float], corner_b_mm: Sequence[float],
                *more_corners_mm: Sequence[float]) -> tuple[int, ...]:
    """Voxel box (x0, y0, z0, x1, y1, z1) enclosing physical (LPS, mm) corners, clipped.

    Two opposite corners suffice for a box aligned with the image axes; pass all eight corners of a
    box that is not (an oblique image, a rotated or transformed ROI)."""
    corners = [corner_a_mm, corner_b_mm, *more_corners_mm]
    index = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(map(float, c))) for c in corners])
    lo = np.clip(np.floor(index.min(axis=0) + 0.5), 0, np.asarray(image.GetSize()) - 1).astype(int)
    hi = np.clip(np.floor(index.max(axis=0) + 0.5) + 1, 1, np.asarray(image.GetSize())).astype(int)
    return (*lo.tolist(), *hi.tolist())


def functional_tumour_volume(pre: sitk.Image, early: sitk.Image, late: sitk.Image, *,
                             box: Box | None = None, omit_boxes: Sequence[Box] = (),
                             omit_mask: sitk.Image | None = None,
                             config: FTVConfig | None = None) -> FTVResult:
    """FTV mask, PE and SER maps and volumes for one DCE examination (all three on one grid)."""
    config = config or FTVConfig()
    check_same_geometry(pre, early, "DCE pre-contrast", "DCE early post-contrast")
    check_same_geometry(pre, late, "DCE pre-contrast", "DCE late post-contrast")
    if pre.GetDimension() != 3:
        raise InputError(f"FTV needs 3D DCE images, got {pre.GetDimension()}D")
    s0, s1, s2 = (sitk.GetArrayFromImage(i).astype(np.float64) for i in (pre, early, late))
    pe, ser = enhancement_maps(s0, s1, s2)
    roi = _box_mask(s0.shape, box, "box")
    for i, omit in enumerate(omit_boxes):
        roi &= ~_box_mask(s0.shape, omit, f"omit box {i + 1}")
    if omit_mask is not None:
        check_same_geometry(pre, omit_mask, "DCE pre-contrast", "omit mask")
        roi &= sitk.GetArrayViewFromImage(omit_mask) == 0
    background = config.background_percent / 100.0 * float(np.percentile(s0, 95))
    keep = roi & (s0 > background) & (pe >= config.pe_threshold)
    if config.ser_threshold > 0:
        keep &= ser >= config.ser_threshold
    keep = _connectivity_filter(keep, config)
    voxel_cm3 = float(np.prod(pre.GetSpacing())) / 1000.0
    ser_volumes = {name: float(np.count_nonzero(keep & (ser >= lo) & (ser < hi))) * voxel_cm3
                   for name, (lo, hi) in SER_CLASSES.items()}
    return FTVResult(mask=_like(keep.astype(np.uint8), pre), pe=_like(pe, pre), ser=_like(ser, pre),
                     volume_cm3=float(keep.sum()) * voxel_cm3, n_voxels=int(keep.sum()),
                     ser_volumes_cm3=ser_volumes, background_threshold=background)


def _connectivity_filter(keep: np.ndarray, config: FTVConfig) -> np.ndarray:
    if not keep.any():
        return keep
    labels, n = ndimage.label(keep, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    ok = sizes >= config.min_component_voxels
    if config.largest_component_only and ok.any():
        ok = np.zeros_like(ok)
        ok[int(np.argmax(sizes))] = True
    ok[0] = False
    return ok[labels]


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image
