"""Segmentation-network bottleneck features: the SegResNet encoder's deepest map pooled in the tumour.

These need no ImageNet weights (the network is the study's own segmentation model), so the
demo always computes them.  Per ROI and channel c of the bottleneck:

* ``bottleneck_mean_c``: mean of the map weighted by the fraction of each (coarse) feature voxel
  inside the tumour;
* ``bottleneck_max_c``: maximum over the feature voxels at least half inside the tumour (over
  the best-covered voxels when none is, e.g. a tumour smaller than one feature voxel).

The study-level step (one feature map per patient and timepoint, pooled in each reader's mask,
cached per ROI, table ``deep_bottleneck``) is :func:`NACResponseLib.deep.cohort.extract_bottleneck`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

MIN_COVERAGE = 0.5


def pool_in_mask(features: np.ndarray, coverage: np.ndarray,
                 min_coverage: float = MIN_COVERAGE) -> tuple[np.ndarray, np.ndarray]:
    """(C, z, y, x) features and a (z, y, x) coverage in [0, 1] -> (mean (C,), max (C,))."""
    features = np.asarray(features, dtype=np.float64)
    coverage = np.asarray(coverage, dtype=np.float64)
    if features.shape[1:] != coverage.shape:
        raise ValueError(f"feature map {features.shape[1:]} and coverage {coverage.shape} differ in shape")
    total = coverage.sum()
    if total <= 0:
        raise InputError("the tumour mask does not overlap the network's feature grid")
    flat = features.reshape(features.shape[0], -1)
    weights = coverage.ravel()
    mean = flat @ weights / total
    inside = weights >= min_coverage
    if not inside.any():
        inside = weights >= weights.max() - 1e-9
    return mean, flat[:, inside].max(axis=1)
