"""IBSI-1 correspondence: which pyradiomics feature matches which IBSI feature tag, and the IBSI
CT-phantom configurations A-E as parameter sets.

Used to check our extraction path against the IBSI consensus reference values (Zwanenburg et al.,
Radiology 2020).  pyradiomics computes 3D texture matrices per direction and averages the
features (IBSI ``3D_avg`` for GLCM/GLRLM) or builds one matrix over all 26 neighbours (IBSI ``3D``
for GLSZM/GLDM/NGTDM).  With ``force2D`` its matrices are in-plane and merged over the slices:
per direction for GLCM/GLRLM, features averaged over the directions (IBSI ``2_5D_avg``,
"2.5D, direction-merged"), one matrix for GLSZM/GLDM/NGTDM (IBSI ``2_5D``); IBSI's per-slice
``2D`` variants have no pyradiomics counterpart.  First-order features on raw intensities map to
``stat_*``, those on the discretised image (entropy, uniformity) to ``ih_*``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

# pyradiomics "<class>_<feature>" -> IBSI tag (shape and first order: no aggregation suffix)
_PLAIN: dict[str, str] = {
    # morphology
    "shape_MeshVolume": "morph_volume", "shape_VoxelVolume": "morph_vol_approx",
    "shape_SurfaceArea": "morph_area_mesh", "shape_SurfaceVolumeRatio": "morph_av",
    "shape_Sphericity": "morph_sphericity", "shape_Maximum3DDiameter": "morph_diam",
    "shape_MajorAxisLength": "morph_pca_maj_axis", "shape_MinorAxisLength": "morph_pca_min_axis",
    "shape_LeastAxisLength": "morph_pca_least_axis", "shape_Elongation": "morph_pca_elongation",
    "shape_Flatness": "morph_pca_flatness",
    # intensity statistics (raw) and histogram (discretised)
    "firstorder_Mean": "stat_mean", "firstorder_Variance": "stat_var", "firstorder_Skewness": "stat_skew",
    "firstorder_Kurtosis": "stat_kurt", "firstorder_Median": "stat_median", "firstorder_Minimum": "stat_min",
    "firstorder_10Percentile": "stat_p10", "firstorder_90Percentile": "stat_p90",
    "firstorder_Maximum": "stat_max", "firstorder_InterquartileRange": "stat_iqr",
    "firstorder_Range": "stat_range", "firstorder_MeanAbsoluteDeviation": "stat_mad",
    "firstorder_RobustMeanAbsoluteDeviation": "stat_rmad", "firstorder_Energy": "stat_energy",
    "firstorder_RootMeanSquared": "stat_rms", "firstorder_Entropy": "ih_entropy",
    "firstorder_Uniformity": "ih_uniformity",
}
# pyradiomics texture feature -> (IBSI tag stem, aggregation): "avg" = features per direction,
# averaged (GLCM, GLRLM); "merged" = one matrix (GLSZM, GLDM, NGTDM)
_TEXTURE: dict[str, tuple[str, str]] = {
    # grey level co-occurrence matrix
    "glcm_MaximumProbability": ("cm_joint_max", "avg"), "glcm_JointAverage": ("cm_joint_avg", "avg"),
    "glcm_SumSquares": ("cm_joint_var", "avg"), "glcm_JointEntropy": ("cm_joint_entr", "avg"),
    "glcm_DifferenceAverage": ("cm_diff_avg", "avg"), "glcm_DifferenceVariance": ("cm_diff_var", "avg"),
    "glcm_DifferenceEntropy": ("cm_diff_entr", "avg"), "glcm_SumAverage": ("cm_sum_avg", "avg"),
    "glcm_SumEntropy": ("cm_sum_entr", "avg"), "glcm_JointEnergy": ("cm_energy", "avg"),
    "glcm_Contrast": ("cm_contrast", "avg"), "glcm_Id": ("cm_inv_diff", "avg"),
    "glcm_Idn": ("cm_inv_diff_norm", "avg"), "glcm_Idm": ("cm_inv_diff_mom", "avg"),
    "glcm_Idmn": ("cm_inv_diff_mom_norm", "avg"), "glcm_InverseVariance": ("cm_inv_var", "avg"),
    "glcm_Correlation": ("cm_corr", "avg"), "glcm_Autocorrelation": ("cm_auto_corr", "avg"),
    "glcm_ClusterTendency": ("cm_clust_tend", "avg"), "glcm_ClusterShade": ("cm_clust_shade", "avg"),
    "glcm_ClusterProminence": ("cm_clust_prom", "avg"), "glcm_Imc1": ("cm_info_corr1", "avg"),
    "glcm_Imc2": ("cm_info_corr2", "avg"),
    # grey level run length matrix
    "glrlm_ShortRunEmphasis": ("rlm_sre", "avg"), "glrlm_LongRunEmphasis": ("rlm_lre", "avg"),
    "glrlm_LowGrayLevelRunEmphasis": ("rlm_lgre", "avg"), "glrlm_HighGrayLevelRunEmphasis": ("rlm_hgre", "avg"),
    "glrlm_ShortRunLowGrayLevelEmphasis": ("rlm_srlge", "avg"),
    "glrlm_ShortRunHighGrayLevelEmphasis": ("rlm_srhge", "avg"),
    "glrlm_LongRunLowGrayLevelEmphasis": ("rlm_lrlge", "avg"),
    "glrlm_LongRunHighGrayLevelEmphasis": ("rlm_lrhge", "avg"),
    "glrlm_GrayLevelNonUniformity": ("rlm_glnu", "avg"),
    "glrlm_GrayLevelNonUniformityNormalized": ("rlm_glnu_norm", "avg"),
    "glrlm_RunLengthNonUniformity": ("rlm_rlnu", "avg"),
    "glrlm_RunLengthNonUniformityNormalized": ("rlm_rlnu_norm", "avg"),
    "glrlm_RunPercentage": ("rlm_r_perc", "avg"), "glrlm_GrayLevelVariance": ("rlm_gl_var", "avg"),
    "glrlm_RunVariance": ("rlm_rl_var", "avg"), "glrlm_RunEntropy": ("rlm_rl_entr", "avg"),
    # grey level size zone matrix
    "glszm_SmallAreaEmphasis": ("szm_sze", "merged"), "glszm_LargeAreaEmphasis": ("szm_lze", "merged"),
    "glszm_LowGrayLevelZoneEmphasis": ("szm_lgze", "merged"),
    "glszm_HighGrayLevelZoneEmphasis": ("szm_hgze", "merged"),
    "glszm_SmallAreaLowGrayLevelEmphasis": ("szm_szlge", "merged"),
    "glszm_SmallAreaHighGrayLevelEmphasis": ("szm_szhge", "merged"),
    "glszm_LargeAreaLowGrayLevelEmphasis": ("szm_lzlge", "merged"),
    "glszm_LargeAreaHighGrayLevelEmphasis": ("szm_lzhge", "merged"),
    "glszm_GrayLevelNonUniformity": ("szm_glnu", "merged"),
    "glszm_GrayLevelNonUniformityNormalized": ("szm_glnu_norm", "merged"),
    "glszm_SizeZoneNonUniformity": ("szm_zsnu", "merged"),
    "glszm_SizeZoneNonUniformityNormalized": ("szm_zsnu_norm", "merged"),
    "glszm_ZonePercentage": ("szm_z_perc", "merged"), "glszm_GrayLevelVariance": ("szm_gl_var", "merged"),
    "glszm_ZoneVariance": ("szm_zs_var", "merged"), "glszm_ZoneEntropy": ("szm_zs_entr", "merged"),
    # neighbourhood grey tone difference matrix
    "ngtdm_Coarseness": ("ngt_coarseness", "merged"), "ngtdm_Contrast": ("ngt_contrast", "merged"),
    "ngtdm_Busyness": ("ngt_busyness", "merged"), "ngtdm_Complexity": ("ngt_complexity", "merged"),
    "ngtdm_Strength": ("ngt_strength", "merged"),
    # grey level dependence matrix (IBSI NGLDM, alpha = 0, Chebyshev distance 1)
    "gldm_SmallDependenceEmphasis": ("ngl_lde", "merged"), "gldm_LargeDependenceEmphasis": ("ngl_hde", "merged"),
    "gldm_LowGrayLevelEmphasis": ("ngl_lgce", "merged"), "gldm_HighGrayLevelEmphasis": ("ngl_hgce", "merged"),
    "gldm_SmallDependenceLowGrayLevelEmphasis": ("ngl_ldlge", "merged"),
    "gldm_SmallDependenceHighGrayLevelEmphasis": ("ngl_ldhge", "merged"),
    "gldm_LargeDependenceLowGrayLevelEmphasis": ("ngl_hdlge", "merged"),
    "gldm_LargeDependenceHighGrayLevelEmphasis": ("ngl_hdhge", "merged"),
    "gldm_GrayLevelNonUniformity": ("ngl_glnu", "merged"), "gldm_DependenceNonUniformity": ("ngl_dcnu", "merged"),
    "gldm_DependenceNonUniformityNormalized": ("ngl_dcnu_norm", "merged"),
    "gldm_GrayLevelVariance": ("ngl_gl_var", "merged"), "gldm_DependenceVariance": ("ngl_dc_var", "merged"),
    "gldm_DependenceEntropy": ("ngl_dc_entr", "merged"),
}
# IBSI features that equal a pyradiomics feature by definition (IBSI reference manual):
# dissimilarity = difference average, sum variance = cluster tendency, and with alpha = 0 every
# voxel is one NGLDM entry, so its normalised grey level non-uniformity is the histogram's uniformity.
_IDENTICAL: tuple[tuple[str, str, str], ...] = (
    ("glcm_DifferenceAverage", "cm_dissimilarity", "avg"),
    ("glcm_ClusterTendency", "cm_sum_var", "avg"),
    ("firstorder_Uniformity", "ngl_glnu_norm", "merged"),
)
#: Texture dimensionality -> IBSI tag suffix per aggregation.
AGGREGATION = {"3D": {"avg": "_3D_avg", "merged": "_3D"}, "2.5D": {"avg": "_2_5D_avg", "merged": "_2_5D"}}


def ibsi_tags(texture: str = "3D") -> list[tuple[str, str]]:
    """(pyradiomics ``<class>_<feature>``, IBSI tag) pairs; ``texture`` is ``3D`` or ``2.5D`` (``force2D``).

    A pyradiomics feature can stand for several IBSI tags (features identical by definition).
    """
    suffix = AGGREGATION[texture]
    pairs = list(_PLAIN.items())
    pairs += [(name, stem + suffix[kind]) for name, (stem, kind) in _TEXTURE.items()]
    pairs += [(name, stem + suffix[kind]) for name, stem, kind in _IDENTICAL]
    return pairs


def texture_of(params: dict[str, Any]) -> str:
    """``2.5D`` when the parameter set computes in-plane texture (``force2D``), else ``3D``."""
    return "2.5D" if (params.get("setting") or {}).get("force2D") else "3D"


def read_reference(csv_path: str | Path) -> dict[str, tuple[float, float]]:
    """IBSI reference CSV (columns ``tag``, ``reference value``, ``tolerance``) -> {tag: (value, tolerance)}."""
    import csv

    out: dict[str, tuple[float, float]] = {}
    with open(csv_path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            value, tol = row.get("reference value", ""), row.get("tolerance", "")
            if row.get("tag") and value not in ("", None):
                out[row["tag"]] = (float(value), float(tol or 0))
    return out


def compare(features: dict[str, float], reference: dict[str, tuple[float, float]],
            image_type: str = "original", texture: str = "3D") -> list[dict[str, Any]]:
    """Per mapped feature: our value, the IBSI value and tolerance, and whether it is :func:`within` it."""
    rows = []
    for name, tag in ibsi_tags(texture):
        key = f"{image_type}_{name}"
        if key not in features or tag not in reference:
            continue
        ref, tol = reference[tag]
        ours = float(features[key])
        rows.append({"feature": key, "tag": tag, "value": ours, "reference": ref, "tolerance": tol,
                     "within": within(ours, ref, tol)})
    return rows


def compare_diagnostics(diagnostics: dict[str, float],
                        reference: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """The IBSI ``Diagnostics`` rows (grid sizes, voxel counts, intensity ranges after each step)
    that ``diagnostics`` (:func:`.ibsi_preprocessing.preprocess`) has, compared like features."""
    rows = []
    for tag, value in diagnostics.items():
        if tag in reference:
            ref, tol = reference[tag]
            rows.append({"tag": tag, "value": value, "reference": ref, "tolerance": tol,
                         "within": within(value, ref, tol)})
    return rows


def within(value: float, reference: float, tolerance: float) -> bool:
    """The IBSI rule plus the rounding allowance: ``|value - ref| <= tol + 0.5`` units of the
    reference's last published digit (IBSI tables round to 3 significant digits)."""
    return abs(value - reference) <= tolerance + 0.5 * _last_digit_unit(reference)


def _last_digit_unit(value: float) -> float:
    """Unit of the last of 3 significant digits."""
    import math

    if value == 0:
        return 0.0
    exponent = math.floor(math.log10(abs(value)))
    return 10.0 ** (exponent - 2)


# IBSI reference manual, CT phantom configurations: texture dimensionality, voxel spacing (mm, 0 keeps
# the axis), image interpolator, discretisation, re-segmentation range (HU) and outlier filter.
CT_CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "A": {"texture": "2.5D", "spacing": None, "interpolator": None, "bins": {"binWidth": 25},
          "range": [-500, 400], "sigma": None},
    "B": {"texture": "2.5D", "spacing": [2, 2, 0], "interpolator": "linear", "bins": {"binCount": 32},
          "range": [-500, 400], "sigma": None},
    "C": {"texture": "3D", "spacing": [2, 2, 2], "interpolator": "linear", "bins": {"binWidth": 25},
          "range": [-1000, 400], "sigma": None},
    "D": {"texture": "3D", "spacing": [2, 2, 2], "interpolator": "linear", "bins": {"binCount": 32},
          "range": None, "sigma": 3},
    "E": {"texture": "3D", "spacing": [2, 2, 2], "interpolator": "bspline", "bins": {"binCount": 32},
          "range": [-1000, 400], "sigma": 3},
}
_BASE = {"imageType": {"Original": {}},
         "featureClass": {c: None for c in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")},
         "setting": {"voxelArrayShift": 0, "distances": [1], "gldm_a": 0, "weightingNorm": None, "label": 1}}


def ct_configuration(name: str, ibsi: bool = True) -> dict[str, Any]:
    """Parameter set for IBSI CT configuration ``name`` (A-E).

    ``ibsi=True``: the ``ibsi`` section does interpolation (mask: trilinear/bilinear, >= 0.5),
    rounding to integer HU and re-segmentation.  ``ibsi=False``: pyradiomics' closest own settings
    (its resampling, nearest-neighbour mask, one re-segmentation: the range where there is one,
    else 3 sigma), i.e. what a pyradiomics user gets.
    """
    config = CT_CONFIGURATIONS[name]
    params = copy.deepcopy(_BASE)
    setting = params["setting"]
    setting.update(config["bins"])
    if config["texture"] == "2.5D":
        setting.update(force2D=True, force2Ddimension=0)
    if ibsi:
        section: dict[str, Any] = {}
        if config["spacing"]:
            section.update(resampledPixelSpacing=config["spacing"], interpolator=config["interpolator"],
                           maskInterpolator="linear", maskThreshold=0.5, roundIntensities=True)
        if config["range"]:
            section["resegmentRange"] = config["range"]
        if config["sigma"]:
            section["resegmentSigma"] = config["sigma"]
        params["ibsi"] = section
        return params
    if config["spacing"]:
        setting.update(resampledPixelSpacing=config["spacing"],
                       interpolator={"linear": "sitkLinear", "bspline": "sitkBSpline"}[config["interpolator"]])
    if config["range"]:
        setting.update(resegmentRange=config["range"], resegmentMode="absolute")
    elif config["sigma"]:
        setting.update(resegmentRange=[-config["sigma"], config["sigma"]], resegmentMode="sigma")
    return params
