"""Inference: sliding window + flip TTA on the network grid, back to the original grid, clean-up.

Also the encoder-bottleneck access used by the deep-features stage (LIMA-style pooling of the
deepest feature map inside the tumour).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..geometry import Geometry
from .bundle import SegmentationModel
from .preprocessing import (
    ChannelSources,
    PreparedCase,
    from_network_array,
    prepare_case,
    resample_to,
)


@dataclass(frozen=True)
class InferenceConfig:
    """Sliding-window and post-processing settings (``roi_size`` None = the model's training ROI)."""

    roi_size: tuple[int, int, int] | None = None
    overlap: float = 0.25
    sw_batch_size: int = 4
    tta: bool = True  # average over flips of each spatial axis
    threshold: float = 0.5
    restrict_to_body: bool = True  # drop voxels outside the breast / body
    fill_holes: bool = True
    min_size_mm3: float = 30.0  # drop components smaller than this
    largest_component: bool = True  # keep one lesion (the largest)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["roi_size"] = list(self.roi_size) if self.roi_size else None
        return d


@dataclass
class Prediction:
    """One case's result on the original grid of the model's reference channel."""

    mask: sitk.Image  # uint8, 1 = tumour
    probability: sitk.Image  # float32 tumour probability
    volume_ml: float
    empty: bool
    message: str


def _predict_network(model: SegmentationModel, array: np.ndarray, config: InferenceConfig) -> np.ndarray:
    """Tumour probability (x, y, z) on the network grid."""
    import torch
    from monai.inferers import sliding_window_inference

    roi = tuple(config.roi_size or model.roi_size)
    if any(r % model.network_config.stride for r in roi):
        raise ValueError(f"roi_size {roi} must be divisible by {model.network_config.stride}")

    def predictor(t):
        return torch.softmax(model.network(t), dim=1)

    x = torch.from_numpy(np.ascontiguousarray(array[None])).to(model.device)
    flips = [()] + ([(2,), (3,), (4,)] if config.tta else [])
    total = None
    with torch.no_grad():
        for axes in flips:
            inp = torch.flip(x, axes) if axes else x
            out = sliding_window_inference(inp, roi, config.sw_batch_size, predictor, overlap=config.overlap,
                                           mode="gaussian")
            out = torch.flip(out, axes) if axes else out
            total = out if total is None else total + out
    return (total[0, 1] / len(flips)).float().cpu().numpy()


def postprocess(mask: np.ndarray, spacing_zyx, body: np.ndarray | None, config: InferenceConfig) -> np.ndarray:
    """Body restriction, hole filling, minimum size and largest component (arrays in z, y, x)."""
    mask = mask.astype(bool)
    if config.restrict_to_body and body is not None:
        mask &= body
    if config.fill_holes and mask.any():
        mask = ndimage.binary_fill_holes(mask)
    if mask.any():
        labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(labels.ravel())[1:] * float(np.prod(spacing_zyx))
        keep = sizes >= config.min_size_mm3
        if config.largest_component and keep.any():
            keep = np.zeros_like(keep)
            keep[int(np.argmax(sizes))] = True
        mask = np.isin(labels, np.flatnonzero(keep) + 1)
    return mask


def predict_prepared(model: SegmentationModel, prepared: PreparedCase,
                     config: InferenceConfig | None = None) -> Prediction:
    config = config or InferenceConfig()
    prob_net = _predict_network(model, prepared.array, config)
    reference = prepared.reference
    prob = resample_to(from_network_array(prob_net, prepared.grid), reference)
    body = resample_to(from_network_array(prepared.body.astype(np.float32), prepared.grid), reference)
    spacing_zyx = tuple(reversed(reference.GetSpacing()))
    array = postprocess(sitk.GetArrayViewFromImage(prob) >= config.threshold, spacing_zyx,
                        sitk.GetArrayViewFromImage(body) >= 0.5, config)
    mask = sitk.GetImageFromArray(array.astype(np.uint8))
    mask.CopyInformation(reference)
    volume = float(array.sum()) * float(np.prod(reference.GetSpacing())) / 1000.0
    empty = not array.any()
    message = (f"{prepared.name}: empty prediction (no voxel above {config.threshold} after post-processing)"
               if empty else f"{prepared.name}: {volume:.2f} ml")
    return Prediction(mask=mask, probability=prob, volume_ml=volume, empty=empty, message=message)


def segment_case(model: SegmentationModel, sources: ChannelSources, config: InferenceConfig | None = None,
                 name: str = "case") -> Prediction:
    """Segment one case.  ``sources``: image key -> path/image, or a list in the model's channel order.

    An empty result is returned with ``empty=True`` (never an exception): the caller reports it.
    """
    return predict_prepared(model, prepare_case(sources, model.preprocess, name), config)


# ---- encoder bottleneck -------------------------------------------------------------------------
def bottleneck_feature_map(model: SegmentationModel, image_channels: ChannelSources | PreparedCase,
                           name: str = "case") -> tuple[np.ndarray, Geometry]:
    """The SegResNet encoder's deepest feature map for a whole case, and the grid it lives on.

    Returns ``(features, grid)``: ``features`` is float32 with shape (C, z, y, x) (SimpleITK array
    order, so ``sitk.GetImageFromArray(features[c])`` with ``grid`` is a physical image), and
    ``grid`` a :class:`~NACResponseLib.geometry.Geometry` (size/spacing/origin/direction in x, y, z).
    Feature voxel (i, j, k) is centred on network-grid voxel (i, j, k) * stride, because each
    stride-2 convolution (kernel 3, padding 1) centres output i on input 2i; hence the grid keeps the
    network grid's origin and direction with ``stride`` x its spacing.  Use :func:`mask_on_grid` to
    get the tumour's coverage of each feature voxel for pooling.
    """
    import torch
    import torch.nn.functional as F

    prepared = image_channels if isinstance(image_channels, PreparedCase) else prepare_case(
        image_channels, model.preprocess, name)
    stride = model.network_config.stride
    x = torch.from_numpy(np.ascontiguousarray(prepared.array[None])).to(model.device)
    pad = []
    for n in reversed(x.shape[2:]):  # F.pad wants the last axis first
        pad += [0, (-n) % stride]
    x = F.pad(x, pad)
    with torch.no_grad():
        feats, _ = model.network.encode(x)
    feats = feats[0].float().cpu().numpy()  # (C, X', Y', Z')
    grid = prepared.grid
    geometry = Geometry(size=tuple(int(s) for s in feats.shape[1:]),
                        spacing=tuple(float(s) * stride for s in grid.GetSpacing()),
                        origin=tuple(grid.GetOrigin()), direction=tuple(grid.GetDirection()))
    return np.ascontiguousarray(feats.transpose(0, 3, 2, 1)), geometry


def geometry_image(grid: Geometry) -> sitk.Image:
    """An empty float32 image with the given geometry (a resampling reference)."""
    image = sitk.Image([int(s) for s in grid.size], sitk.sitkFloat32)
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    image.SetDirection(grid.direction)
    return image


def mask_on_grid(mask: sitk.Image, grid: Geometry, label: int | None = 1, oversample: int = 4) -> np.ndarray:
    """Fraction (0..1) of each voxel of ``grid`` covered by the mask, as a (z, y, x) array.

    The mask is sampled on a grid ``oversample`` times finer and averaged per coarse voxel, so a
    feature voxel half inside the tumour gets 0.5 whatever the two grids' alignment.
    """
    k = int(oversample)
    direction = np.asarray(grid.direction, float).reshape(3, 3)
    spacing = np.asarray(grid.spacing, float)
    fine_origin = np.asarray(grid.origin, float) + direction @ (-spacing / 2 + spacing / (2 * k))
    fine = Geometry(size=tuple(int(s) * k for s in grid.size), spacing=tuple(spacing / k),
                    origin=tuple(fine_origin), direction=tuple(grid.direction))
    binary = (mask == label) if label is not None else (mask > 0)
    values = sitk.GetArrayFromImage(resample_to(binary, geometry_image(fine), linear=False))
    z, y, x = (int(s) for s in reversed(grid.size))
    return values.reshape(z, k, y, k, x, k).mean(axis=(1, 3, 5)).astype(np.float32)
