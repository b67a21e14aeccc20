"""Deep features: ResNet-50 2.5D descriptors, segmentation-network bottleneck features, Grad-CAM, PCA.

Importing this package does not import torch; the network modules do so when first used.
"""

from __future__ import annotations

from .bottleneck import pool_in_mask
from .cases import DEFAULT_CHANNELS, Case, cohort_cases
from .cohort import ResNetSettings, case_input, extract_bottleneck, extract_resnet50
from .pca import DeepPCA
from .slices import SliceInput, largest_slice_index, map_to_reference, prepare_input
from .tables import (
    BOTTLENECK_TABLE,
    RESNET_SLICES_TABLE,
    RESNET_TABLE,
    bottleneck_feature_names,
    resnet_feature_names,
    wide_from_vectors,
)

__all__ = [
    "BOTTLENECK_TABLE", "DEFAULT_CHANNELS", "RESNET_SLICES_TABLE", "RESNET_TABLE", "Case", "DeepPCA",
    "ResNetSettings", "SliceInput", "bottleneck_feature_names", "case_input",
    "cohort_cases", "extract_bottleneck", "extract_resnet50", "largest_slice_index", "map_to_reference",
    "pool_in_mask", "prepare_input", "resnet_feature_names", "wide_from_vectors",
]
