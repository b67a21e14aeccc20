"""Tumour segmentation: MONAI network (training, bundle, inference), DCE functional tumour volume,
seeded region growing and RECIST / volume measurements.

Heavy dependencies (torch, monai) are imported inside the functions that need them, so importing
this package stays cheap.  The public entry points are re-exported here.
"""

from __future__ import annotations

from .bundle import SegmentationModel, load_bundle, save_bundle
from .inference import InferenceConfig, Prediction, bottleneck_feature_map, mask_on_grid, predict_case
from .network import NetworkConfig, build_network
from .preprocessing import PreprocessConfig

__all__ = [
    "InferenceConfig", "NetworkConfig", "Prediction", "PreprocessConfig", "SegmentationModel",
    "bottleneck_feature_map", "build_network", "load_bundle", "mask_on_grid", "predict_case", "save_bundle",
]
