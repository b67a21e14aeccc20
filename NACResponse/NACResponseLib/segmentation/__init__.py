"""Tumour segmentation: MONAI network (training, bundle, inference), DCE functional tumour volume,
seeded region growing and RECIST / volume measurements.

Heavy dependencies (torch, monai) are imported inside the functions that need them, so importing
this package stays cheap.  The public entry points are re-exported here.
"""

from __future__ import annotations

from .bundle import SegmentationModel, load_bundle, save_bundle
from .ftv import FTVConfig, FTVResult, functional_tumour_volume
from .inference import InferenceConfig, Prediction, bottleneck_feature_map, mask_on_grid, segment_case
from .measurements import (
    longest_inplane_diameter_mm,
    max_3d_diameter_mm,
    measure_mask,
    recist_category,
    volume_ml,
)
from .network import NetworkConfig, build_network
from .preprocessing import PreprocessConfig
from .region_growing import region_grow

__all__ = [
    "FTVConfig", "FTVResult", "InferenceConfig", "NetworkConfig", "Prediction", "PreprocessConfig",
    "SegmentationModel", "bottleneck_feature_map", "build_network", "functional_tumour_volume",
    "load_bundle", "longest_inplane_diameter_mm", "mask_on_grid", "max_3d_diameter_mm", "measure_mask",
    "segment_case", "recist_category", "region_grow", "save_bundle", "volume_ml",
]
