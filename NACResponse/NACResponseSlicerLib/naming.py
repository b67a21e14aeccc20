"""Node names and display defaults (Slicer-free), so every panel names things the same way."""

from __future__ import annotations

import numpy as np

#: NACResponseLib.study.model.TIMEPOINTS in chronological order (repeated here so the module file can build
#: its parameter node before the core's dependencies are installed).
TIMEPOINTS = ["pre", "c2", "c4", "post"]

_ROLE_LABELS = {
    "dce_pre": "DCE-pre",
    "dce_early": "DCE-early",
    "dce_late": "DCE-late",
    "sub": "SUB",
    "t2w": "T2W",
    "dwi": "DWI",
    "adc": "ADC",
    "us_bmode": "US",
    "mg_cc": "MG-CC",
    "mg_mlo": "MG-MLO",
}


def image_label(image_key: str) -> str:
    """``dce_early`` -> ``DCE-early``; ``dwi_b800`` -> ``DWI-b800``; ``mg_cc_L`` -> ``MG-CC-L``."""
    for role in sorted(_ROLE_LABELS, key=len, reverse=True):
        if image_key == role:
            return _ROLE_LABELS[role]
        if image_key.startswith(role + "_"):
            return _ROLE_LABELS[role] + "-" + image_key[len(role) + 1:]
    return image_key


def volume_name(patient_id: str, timepoint: str, image_key: str) -> str:
    """``P012 pre DCE-early``."""
    return f"{patient_id} {timepoint} {image_label(image_key)}"


def segmentation_name(patient_id: str, timepoint: str, reader: str, method: str = "manual") -> str:
    """``P012 pre R1 manual``."""
    return f"{patient_id} {timepoint} {reader} {method}"


def timepoint_folder_name(patient_id: str, timepoint: str) -> str:
    return f"{patient_id} {timepoint}"


def window_level(array, low_percentile: float = 1.0, high_percentile: float = 99.5) -> tuple[float, float]:
    """Window and level from robust percentiles of the non-background voxels.

    MR intensities have no absolute scale and a large air background, so Slicer's default automatic
    window (which includes the background) washes tumours out; percentiles of the non-zero voxels
    give a readable, reproducible display.
    """
    values = np.asarray(array, dtype=float).ravel()
    values = values[np.isfinite(values)]
    foreground = values[values != 0]
    if foreground.size >= 16:
        values = foreground
    if values.size == 0:
        return 1.0, 0.0
    low, high = np.percentile(values, [low_percentile, high_percentile])
    if high <= low:
        high = low + 1.0
    return float(high - low), float((high + low) / 2.0)
