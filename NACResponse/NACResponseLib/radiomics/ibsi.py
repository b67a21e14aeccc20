"""IBSI-1 correspondence: which pyradiomics feature matches which IBSI feature tag.

Used to check our extraction path against the IBSI consensus reference values of the digital
phantom (Zwanenburg et al., Radiology 2020).  pyradiomics computes 3D texture matrices per
direction and averages the features (IBSI ``3D_avg`` for GLCM/GLRLM) or builds one matrix over
all 26 neighbours (IBSI ``3D`` for GLSZM/GLDM/NGTDM); first-order features on raw intensities
map to ``stat_*``, those on the discretised image (entropy, uniformity) to ``ih_*``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# pyradiomics "<class>_<feature>" -> IBSI tag
IBSI_TAGS: dict[str, str] = {
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
    # grey level co-occurrence matrix, 3D, averaged over directions
    "glcm_MaximumProbability": "cm_joint_max_3D_avg", "glcm_JointAverage": "cm_joint_avg_3D_avg",
    "glcm_SumSquares": "cm_joint_var_3D_avg", "glcm_JointEntropy": "cm_joint_entr_3D_avg",
    "glcm_DifferenceAverage": "cm_diff_avg_3D_avg", "glcm_DifferenceVariance": "cm_diff_var_3D_avg",
    "glcm_DifferenceEntropy": "cm_diff_entr_3D_avg", "glcm_SumAverage": "cm_sum_avg_3D_avg",
    "glcm_SumEntropy": "cm_sum_entr_3D_avg", "glcm_JointEnergy": "cm_energy_3D_avg",
    "glcm_Contrast": "cm_contrast_3D_avg", "glcm_Id": "cm_inv_diff_3D_avg", "glcm_Idn": "cm_inv_diff_norm_3D_avg",
    "glcm_Idm": "cm_inv_diff_mom_3D_avg", "glcm_Idmn": "cm_inv_diff_mom_norm_3D_avg",
    "glcm_InverseVariance": "cm_inv_var_3D_avg", "glcm_Correlation": "cm_corr_3D_avg",
    "glcm_Autocorrelation": "cm_auto_corr_3D_avg", "glcm_ClusterTendency": "cm_clust_tend_3D_avg",
    "glcm_ClusterShade": "cm_clust_shade_3D_avg", "glcm_ClusterProminence": "cm_clust_prom_3D_avg",
    "glcm_Imc1": "cm_info_corr1_3D_avg", "glcm_Imc2": "cm_info_corr2_3D_avg",
    # grey level run length matrix, 3D, averaged over directions
    "glrlm_ShortRunEmphasis": "rlm_sre_3D_avg", "glrlm_LongRunEmphasis": "rlm_lre_3D_avg",
    "glrlm_LowGrayLevelRunEmphasis": "rlm_lgre_3D_avg", "glrlm_HighGrayLevelRunEmphasis": "rlm_hgre_3D_avg",
    "glrlm_ShortRunLowGrayLevelEmphasis": "rlm_srlge_3D_avg",
    "glrlm_ShortRunHighGrayLevelEmphasis": "rlm_srhge_3D_avg",
    "glrlm_LongRunLowGrayLevelEmphasis": "rlm_lrlge_3D_avg",
    "glrlm_LongRunHighGrayLevelEmphasis": "rlm_lrhge_3D_avg",
    "glrlm_GrayLevelNonUniformity": "rlm_glnu_3D_avg", "glrlm_GrayLevelNonUniformityNormalized": "rlm_glnu_norm_3D_avg",
    "glrlm_RunLengthNonUniformity": "rlm_rlnu_3D_avg",
    "glrlm_RunLengthNonUniformityNormalized": "rlm_rlnu_norm_3D_avg",
    "glrlm_RunPercentage": "rlm_r_perc_3D_avg", "glrlm_GrayLevelVariance": "rlm_gl_var_3D_avg",
    "glrlm_RunVariance": "rlm_rl_var_3D_avg", "glrlm_RunEntropy": "rlm_rl_entr_3D_avg",
    # grey level size zone matrix, 3D
    "glszm_SmallAreaEmphasis": "szm_sze_3D", "glszm_LargeAreaEmphasis": "szm_lze_3D",
    "glszm_LowGrayLevelZoneEmphasis": "szm_lgze_3D", "glszm_HighGrayLevelZoneEmphasis": "szm_hgze_3D",
    "glszm_SmallAreaLowGrayLevelEmphasis": "szm_szlge_3D", "glszm_SmallAreaHighGrayLevelEmphasis": "szm_szhge_3D",
    "glszm_LargeAreaLowGrayLevelEmphasis": "szm_lzlge_3D", "glszm_LargeAreaHighGrayLevelEmphasis": "szm_lzhge_3D",
    "glszm_GrayLevelNonUniformity": "szm_glnu_3D", "glszm_GrayLevelNonUniformityNormalized": "szm_glnu_norm_3D",
    "glszm_SizeZoneNonUniformity": "szm_zsnu_3D", "glszm_SizeZoneNonUniformityNormalized": "szm_zsnu_norm_3D",
    "glszm_ZonePercentage": "szm_z_perc_3D", "glszm_GrayLevelVariance": "szm_gl_var_3D",
    "glszm_ZoneVariance": "szm_zs_var_3D", "glszm_ZoneEntropy": "szm_zs_entr_3D",
    # neighbourhood grey tone difference matrix, 3D
    "ngtdm_Coarseness": "ngt_coarseness_3D", "ngtdm_Contrast": "ngt_contrast_3D", "ngtdm_Busyness": "ngt_busyness_3D",
    "ngtdm_Complexity": "ngt_complexity_3D", "ngtdm_Strength": "ngt_strength_3D",
    # grey level dependence matrix (IBSI NGLDM, alpha = 0, Chebyshev distance 1), 3D
    "gldm_SmallDependenceEmphasis": "ngl_lde_3D", "gldm_LargeDependenceEmphasis": "ngl_hde_3D",
    "gldm_LowGrayLevelEmphasis": "ngl_lgce_3D", "gldm_HighGrayLevelEmphasis": "ngl_hgce_3D",
    "gldm_SmallDependenceLowGrayLevelEmphasis": "ngl_ldlge_3D",
    "gldm_SmallDependenceHighGrayLevelEmphasis": "ngl_ldhge_3D",
    "gldm_LargeDependenceLowGrayLevelEmphasis": "ngl_hdlge_3D",
    "gldm_LargeDependenceHighGrayLevelEmphasis": "ngl_hdhge_3D",
    "gldm_GrayLevelNonUniformity": "ngl_glnu_3D", "gldm_DependenceNonUniformity": "ngl_dcnu_3D",
    "gldm_DependenceNonUniformityNormalized": "ngl_dcnu_norm_3D", "gldm_GrayLevelVariance": "ngl_gl_var_3D",
    "gldm_DependenceVariance": "ngl_dc_var_3D", "gldm_DependenceEntropy": "ngl_dc_entr_3D",
}


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
            image_type: str = "original") -> list[dict[str, Any]]:
    """Per mapped feature: our value, the IBSI value and tolerance, and whether it is within tolerance.

    IBSI publishes values to 3 significant digits with a tolerance; a value counts as within
    tolerance when ``|ours - ref| <= tol + 0.5`` units of the reference's last published digit.
    """
    rows = []
    for name, tag in IBSI_TAGS.items():
        key = f"{image_type}_{name}"
        if key not in features or tag not in reference:
            continue
        ref, tol = reference[tag]
        ours = float(features[key])
        rounding = 0.5 * _last_digit_unit(ref)
        rows.append({"feature": key, "tag": tag, "value": ours, "reference": ref, "tolerance": tol,
                     "within": abs(ours - ref) <= tol + rounding})
    return rows


def _last_digit_unit(value: float) -> float:
    """Unit of the last of 3 significant digits (IBSI tables round to 3 significant digits)."""
    import math

    if value == 0:
        return 0.0
    exponent = math.floor(math.log10(abs(value)))
    return 10.0 ** (exponent - 2)
