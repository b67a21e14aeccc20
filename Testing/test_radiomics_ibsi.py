"""IBSI-1 reference values through our path: the digital phantom and the CT phantom (configurations A-E).

Every pyradiomics feature that maps to an IBSI tag is compared with the IBSI consensus value and
tolerance (plus the allowance for the 3 published digits, ``ibsi.within``).  With pyradiomics' own
processing the deviations are pinned (a new deviation, or a pinned one that starts agreeing,
fails); with the IBSI processing (``ibsi`` section) every mapped feature and every Diagnostics row
must agree.  The phantoms are read from ../shared/data (CC BY-NC: test use only, never copied).
"""

from __future__ import annotations

import pytest

# pyradiomics feature -> reason (pyradiomics documentation, "IBSI" notes / FAQ)
KNOWN_DEVIATIONS = {
    "original_firstorder_Kurtosis": "pyradiomics reports kurtosis, IBSI excess kurtosis (= kurtosis - 3)",
    "original_shape_MinorAxisLength": "PCA of voxel coordinates with population covariance (N); IBSI uses N - 1",
    "original_shape_LeastAxisLength": "PCA of voxel coordinates with population covariance (N); IBSI uses N - 1",
}
N_MAPPED = 105  # pyradiomics features with an IBSI tag (ibsi.ibsi_tags), all in every reference table
# Mapped features within tolerance with pyradiomics' closest own settings (ibsi.ct_configuration(c, ibsi=False)),
# as measured; the README's conformance table shows the same numbers.
PYRADIOMICS_WITHIN = {"A": 104, "B": 50, "C": 21, "D": 19, "E": 12}


def _report(rows) -> str:
    return "\n".join(f"{r.get('feature', r['tag'])} ({r['tag']}): ours {r['value']:.6g} IBSI {r['reference']} "
                     f"+- {r['tolerance']}" for r in rows if not r["within"])


@pytest.fixture(scope="module")
def digital(shared_data):
    from NACResponseLib.radiomics import load_params

    folder = shared_data / "ibsi1"
    params = load_params("ibsi")
    native = {k: v for k, v in params.items() if k != "ibsi"}  # pyradiomics' own processing
    return folder, params, native


@pytest.fixture(scope="module")
def comparison(digital):
    from NACResponseLib.radiomics import extract
    from NACResponseLib.radiomics.ibsi import compare, read_reference

    folder, _, native = digital
    features = extract(folder / "phantom.nii.gz", folder / "mask.nii.gz", native)
    rows = compare(features, read_reference(folder / "reference_values_digital_phantom.csv"))
    return features, {r["tag"]: r for r in rows}


def test_ibsi_phantom_deviations_are_exactly_the_known_ones(comparison):
    _, rows = comparison
    assert len(rows) == N_MAPPED  # shape, first order and all texture families are compared
    deviating = {r["feature"] for r in rows.values() if not r["within"]}
    assert deviating == set(KNOWN_DEVIATIONS), _report(rows.values())


def test_known_deviations_have_their_documented_cause(comparison):
    """The pinned deviations are the documented definitional differences, exactly: corrected, each
    lands within the rounding of the published digits alone; uncorrected, outside it."""
    from NACResponseLib.radiomics.ibsi import within

    features, rows = comparison
    kurt = rows["stat_kurt"]
    assert within(kurt["value"] - 3, kurt["reference"], 0.0)
    # N vs N-1: 74 voxels in the phantom ROI; the correction (0.7 %) is about the IBSI tolerance,
    # so it is checked against the published digits only (tolerance 0)
    n = 74
    for name in ("morph_pca_maj_axis", "morph_pca_min_axis", "morph_pca_least_axis"):
        r = rows[name]
        assert within(r["value"] * (n / (n - 1)) ** 0.5, r["reference"], 0.0), name
        assert not within(r["value"], r["reference"], 0.0), name
    assert features["original_shape_VoxelVolume"] == pytest.approx(n * 8.0)


def test_ibsi_voxel_count_matches_mask(shared_data, comparison):
    import numpy as np
    import SimpleITK as sitk

    features, _ = comparison
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / "ibsi1" / "mask.nii.gz")))
    assert features["original_shape_VoxelVolume"] == pytest.approx(np.count_nonzero(mask) * 8.0)


def test_ibsi_mode_digital_phantom_has_no_deviation(digital):
    """The shipped ``ibsi`` set (IBSI processing on): every mapped feature, kurtosis and axes included."""
    from NACResponseLib.radiomics import extract
    from NACResponseLib.radiomics.ibsi import compare, read_reference

    folder, params, _ = digital
    features = extract(folder / "phantom.nii.gz", folder / "mask.nii.gz", "ibsi")
    rows = compare(features, read_reference(folder / "reference_values_digital_phantom.csv"))
    assert len(rows) == N_MAPPED and all(r["within"] for r in rows), _report(rows)


# ---- CT phantom, configurations A-E ------------------------------------------------------------

@pytest.fixture(scope="module")
def ct_phantom(shared_data):
    import SimpleITK as sitk

    folder = shared_data / "ibsi1_ct"
    if not (folder / "image.nii.gz").is_file():
        pytest.skip(f"IBSI CT phantom not available ({folder} is absent)")
    return folder, sitk.ReadImage(str(folder / "image.nii.gz")), sitk.ReadImage(str(folder / "mask.nii.gz"))


@pytest.mark.parametrize("config", list("ABCDE"))
def test_ct_phantom_ibsi_mode_conforms(ct_phantom, config):
    """IBSI processing: all mapped features (kurtosis included) and every Diagnostics row (grid
    sizes, voxel counts after interpolation and re-segmentation, intensity ranges) within tolerance;
    pyradiomics' own processing with its closest settings gets the pinned, lower count."""
    from NACResponseLib.radiomics import extract
    from NACResponseLib.radiomics.ibsi import (
        compare,
        compare_diagnostics,
        ct_configuration,
        read_reference,
        texture_of,
    )
    from NACResponseLib.radiomics.ibsi_preprocessing import preprocess
    from NACResponseLib.radiomics.params import ibsi_settings

    folder, image, mask = ct_phantom
    reference = read_reference(folder / f"reference_values_config_{config}.csv")
    params = ct_configuration(config)
    rows = compare(extract(image, mask, params), reference, texture=texture_of(params))
    assert len(rows) == N_MAPPED
    assert all(r["within"] for r in rows), _report(rows)
    assert next(r for r in rows if r["tag"] == "stat_kurt")["within"]

    setting = params["setting"]
    pre = preprocess(image, mask, ibsi_settings(params), bin_width=setting.get("binWidth"), diagnostics=True)
    diagnostics = compare_diagnostics(pre.diagnostics, reference)
    tags = {r["tag"] for r in diagnostics}
    assert {"int_mask_vox_count_interp_roi", "int_mask_vox_count_reseg_roi", "morph_mask_vox_count_reseg_roi",
            "int_mask_min_int_reseg_roi", "int_mask_max_int_reseg_roi", "img_dim_z_interp_img"} <= tags
    assert len(diagnostics) == 60 and all(r["within"] for r in diagnostics), _report(diagnostics)

    default = ct_configuration(config, ibsi=False)
    rows = compare(extract(image, mask, default), reference, texture=texture_of(default))
    assert sum(r["within"] for r in rows) == PYRADIOMICS_WITHIN[config], _report(rows)
    assert not next(r for r in rows if r["tag"] == "stat_kurt")["within"]
