"""IBSI pre-processing (the ``ibsi`` section) on small synthetic images, against hand derivations,
scipy and numpy; and pyradiomics' own processing untouched when the section is absent."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import InputError
from NACResponseLib.radiomics import extract, load_params
from NACResponseLib.radiomics.cohort import TABLES
from NACResponseLib.radiomics.ibsi_preprocessing import (
    BIN_ORIGIN,
    IbsiSettings,
    centred_grid,
    install_bin_origin,
    parse,
    preprocess,
    resegmentation_range,
)

SMALL = {"imageType": {"Original": {}}, "featureClass": {"firstorder": None, "shape": None, "gldm": None},
         "setting": {"binWidth": 25, "label": 1, "gldm_a": 0}}


def _image(array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def _centre(image) -> np.ndarray:
    return np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))


def test_centred_grid_keeps_the_grid_centre():
    """IBSI 'align grid centres': n' = ceil(n s / s'), same centre, same direction; 0 keeps an axis."""
    flip = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # a rotated grid: the shift follows the axes
    image = _image(np.zeros((5, 7, 10), np.float32), spacing=(0.977, 0.977, 3.0), origin=(-17.0, 4.0, 2.5),
                   direction=flip)
    grid = centred_grid(image, (2.0, 2.0, 0.0))
    assert grid.GetSize() == (math.ceil(10 * 0.977 / 2), math.ceil(7 * 0.977 / 2), 5) == (5, 4, 5)
    assert grid.GetSpacing() == pytest.approx((2.0, 2.0, 3.0))
    assert grid.GetDirection() == flip
    assert _centre(grid) == pytest.approx(_centre(image), abs=1e-9)
    same = centred_grid(image, (0.977, 0.977, 3.0))  # no float noise in ceil(): the grid is unchanged
    assert same.GetSize() == image.GetSize() and same.GetOrigin() == pytest.approx(image.GetOrigin())


def test_interpolation_rounding_and_mask_threshold_by_hand():
    """x spacing 1 -> 2 mm: new voxel centres lie half-way between old pairs (0.5, 2.5, ...), so
    linear interpolation averages the pair.  A mask voxel is kept at exactly 0.5."""
    x = np.arange(10)
    values = np.broadcast_to(3 * x + 0.1, (3, 3, 10)).astype(np.float32)
    mask = np.zeros((3, 3, 10), np.uint8)
    mask[:, :, :3] = 1  # x = 0, 1, 2
    settings = IbsiSettings(spacing=(2.0, 1.0, 1.0), round_intensities=True)
    pre = preprocess(_image(values), _image(mask), settings, diagnostics=True)
    new = sitk.GetArrayFromImage(pre.image)[1, 1]
    pairs = (3 * x[0::2] + 0.1 + 3 * x[1::2] + 0.1) / 2  # 1.6, 7.6, 13.6, ...
    assert new.tolist() == np.round(pairs).tolist() == [2, 8, 14, 20, 26]
    kept = sitk.GetArrayFromImage(pre.mask)[1, 1]
    assert kept.tolist() == [1, 1, 0, 0, 0]  # (1 + 1) / 2 = 1 and (1 + 0) / 2 = 0.5 (kept), then 0
    assert pre.n_voxels == 2 * 9 and pre.diagnostics["int_mask_vox_count_interp_roi"] == 18


def test_combined_resegmentation_is_the_intersection():
    rng = np.random.default_rng(1)
    values = rng.normal(0, 300, 5000)
    mean, sd = values.mean(), values.std()
    both = resegmentation_range(values, IbsiSettings(resegment_range=(-500.0, 400.0), resegment_sigma=3.0))
    assert both == pytest.approx((max(-500, mean - 3 * sd), min(400, mean + 3 * sd)))
    assert resegmentation_range(values, IbsiSettings(resegment_sigma=3.0)) == pytest.approx(
        (mean - 3 * sd, mean + 3 * sd))
    assert resegmentation_range(values, IbsiSettings()) == (-math.inf, math.inf)


def test_bin_origin_gives_the_ibsi_grey_levels():
    """IBSI fixed bin size: level = floor((x - origin) / w) + 1; without the origin setting the
    wrapper is pyradiomics' own floor(x / w) - floor(min / w) + 1."""
    from radiomics import imageoperations

    install_bin_origin()
    x = np.array([-939.0, -975.0, -950.0, 0.0, 24.9, 25.0, 393.0, 400.0])
    edges = imageoperations.getBinEdges(x, binWidth=25, **{BIN_ORIGIN: -1000.0})
    assert np.digitize(x, edges).tolist() == (np.floor((x + 1000) / 25) + 1).astype(int).tolist()
    assert np.digitize(x, edges).min() == 2  # -975 is level 2: the ROI minimum is not level 1
    plain = imageoperations.getBinEdges(x, binWidth=25)
    assert np.digitize(x, plain).tolist() == (np.floor(x / 25) - np.floor(x.min() / 25) + 1).astype(int).tolist()
    counted = imageoperations.getBinEdges(x, binCount=8, **{BIN_ORIGIN: -1000.0})  # bin count: origin unused
    assert np.array_equal(counted, imageoperations.getBinEdges(x, binCount=8))


def _lumpy(shape=(14, 16, 18), seed=3):
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    image = (rng.normal(80, 30, shape) + 2 * x).astype(np.float32)
    mask = ((z - 7) ** 2 / 25 + (y - 8) ** 2 / 36 + (x - 8) ** 2 / 49 <= 1).astype(np.uint8)
    return image, mask


def test_ibsi_mode_reports_ibsi_kurtosis_and_axis_lengths():
    """Excess kurtosis (scipy, Fisher) and PCA axes from the sample covariance (numpy, ddof=1)."""
    from scipy.stats import kurtosis

    image, mask = _lumpy()
    spacing = (0.8, 0.9, 1.5)
    features = extract(_image(image, spacing), _image(mask, spacing), {**SMALL, "ibsi": {}})
    assert features["original_firstorder_Kurtosis"] == pytest.approx(kurtosis(image[mask > 0].astype(float), fisher=True),
                                                                     rel=1e-9)
    coords = np.argwhere(mask > 0)[:, ::-1] * np.array(spacing)  # (x, y, z) in mm
    axes = 4 * np.sqrt(np.sort(np.linalg.eigvalsh(np.cov(coords.T, ddof=1))))
    got = [features[f"original_shape_{n}AxisLength"] for n in ("Least", "Minor", "Major")]
    assert got == pytest.approx(axes.tolist(), rel=1e-9)


def test_ibsi_mode_bins_from_the_range_lower_bound():
    """With alpha = 0 every ROI voxel is one NGLDM entry, so High/Low Grey Level Emphasis are the
    mean of level^2 and 1/level^2 over the voxels: a direct check of the grey levels pyradiomics used."""
    image, mask = _lumpy()
    low, width = -100.0, 25.0
    params = {**SMALL, "ibsi": {"resegmentRange": [low, 1000]}}
    features = extract(_image(image), _image(mask), params)
    values = image[mask > 0].astype(float)
    levels = np.floor((values - low) / width) + 1
    assert levels.min() > 1  # the ROI does not reach the range's lower bound
    assert features["original_gldm_HighGrayLevelEmphasis"] == pytest.approx(np.mean(levels ** 2), rel=1e-12)
    assert features["original_gldm_LowGrayLevelEmphasis"] == pytest.approx(np.mean(levels ** -2.0), rel=1e-12)
    plain = extract(_image(image), _image(mask), SMALL)
    pyradiomics_levels = np.floor(values / width) - np.floor(values.min() / width) + 1
    assert plain["original_gldm_HighGrayLevelEmphasis"] == pytest.approx(np.mean(pyradiomics_levels ** 2),
                                                                         rel=1e-12)


def test_default_processing_is_untouched_after_ibsi_use():
    """The bin-origin wrapper is global once installed; without the ibsi section results stay
    exactly pyradiomics' own."""
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    image, mask = _lumpy()
    extract(_image(image), _image(mask), {**SMALL, "ibsi": {"resegmentRange": [-100, 1000]}})
    ours = extract(_image(image), _image(mask), SMALL)
    direct = RadiomicsFeatureExtractor(SMALL).execute(_image(image), sitk.Cast(_image(mask), sitk.sitkUInt32))
    assert ours == {k: float(np.real(v)) for k, v in direct.items() if not k.startswith("diagnostics")}


def test_ibsi_roi_left_empty_is_a_clear_error():
    image, mask = _lumpy()
    with pytest.raises(InputError, match=r"tumour\.nii: no ROI voxel .* re-segmentation range \[2000, 3000\]"):
        extract(_image(image), _image(mask), {**SMALL, "ibsi": {"resegmentRange": [2000, 3000]}},
                mask_name="tumour.nii")


@pytest.mark.parametrize(("section", "message"), [
    ("{resampledPixelSpacing: [2, 2, 2], interp: linear}", r"unknown key\(s\) \['interp'\]"),
    ("{resampledPixelSpacing: [0, 0, 0]}", "resampledPixelSpacing must be a list of mm"),
    ("{interpolator: sinc}", "unknown interpolator 'sinc'"),
    ("{resegmentRange: [400, -500]}", "low is above high"),
    ("{resegmentSigma: -3}", "resegmentSigma must be a positive number"),
    ("{maskThreshold: 1.5}", r"maskThreshold must be in \(0, 1\]"),
    ("[2, 2, 2]", "must be a mapping"),
])
def test_bad_ibsi_section_names_the_file(tmp_path, section, message):
    path = tmp_path / "my_params.yaml"
    path.write_text(f"ibsi: {section}\nimageType: {{Original: {{}}}}\nsetting: {{binWidth: 25}}\n")
    with pytest.raises(InputError, match=rf"my_params\.yaml: .*{message}"):
        load_params(path)


def test_ibsi_section_owns_interpolation_and_resegmentation(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text("ibsi: {resampledPixelSpacing: [2, 2, 2]}\nimageType: {Original: {}}\n"
                    "setting: {binWidth: 25, resampledPixelSpacing: [1, 1, 1], resegmentRange: [-500, 400]}\n")
    with pytest.raises(InputError, match=r"both\.yaml: setting \['resampledPixelSpacing', 'resegmentRange'\] "
                                         "conflicts with the 'ibsi' section"):
        load_params(path)


def test_ibsi_switch_forms():
    assert parse(True) == IbsiSettings()
    assert load_params({**SMALL, "ibsi": True})["ibsi"] == {}
    assert "ibsi" not in load_params({**SMALL, "ibsi": False})
    assert load_params("ibsi")["ibsi"] == {}  # the shipped IBSI set switches IBSI processing on


def test_cohort_run_in_ibsi_mode_and_switching_it_recomputes(copy_study):
    """The ibsi section travels through the runner to the workers; it is part of the task digest,
    so the same study with and without it is computed twice, and a rerun reuses each."""
    from NACResponseLib.radiomics import extract_cohort

    params = {**SMALL, "ibsi": {"resampledPixelSpacing": [2, 2, 2], "resegmentSigma": 3}}
    opts = dict(mode="serial", images=["dce_early"], readers=["R1"], timepoints=["pre"], progress_mode="none")
    first = extract_cohort(copy_study, params, **opts)
    n = len(first.rois)
    assert n > 0 and first.summary.computed == n and first.summary.failed == 0
    roi, row = first.rois[0], first.long.iloc[0]
    direct = extract(copy_study.path(roi.image_path), copy_study.path(roi.mask_path), params, label=roi.label)
    assert row["original_firstorder_Kurtosis"] == pytest.approx(direct["original_firstorder_Kurtosis"], rel=1e-12)
    assert extract_cohort(copy_study, params, **opts).summary.computed == 0
    # A subset run never mixes parameter files in the stored tables, so drop them; the runner's per-ROI
    # results stay, and only the task digest decides what is recomputed.
    for name in TABLES:
        copy_study.table_path(name).unlink()
    plain = extract_cohort(copy_study, SMALL, **opts)
    assert plain.summary.computed == n
    assert plain.long.iloc[0]["original_firstorder_Kurtosis"] != pytest.approx(row["original_firstorder_Kurtosis"])
    with pytest.raises(InputError, match="params_sha256 differs"):
        extract_cohort(copy_study, params, **opts)

def test_ibsi_mode_on_a_2d_image():
    """2D images (ultrasound, mammography ROIs) take the same path: 2-axis grid, 2D shape."""
    from scipy.stats import kurtosis

    image, mask = _lumpy()
    image2d, mask2d = image[7], mask[7]
    params = {"imageType": {"Original": {}}, "featureClass": {"firstorder": None, "shape2D": None, "glcm": None},
              "setting": {"binWidth": 25, "force2D": True, "label": 1},
              "ibsi": {"resampledPixelSpacing": [2, 2], "roundIntensities": True, "resegmentSigma": 3}}
    img, msk = _image(image2d, (1.0, 1.0), (0.0, 0.0)), _image(mask2d, (1.0, 1.0), (0.0, 0.0))
    features = extract(img, msk, params)
    pre = preprocess(img, msk, parse(params["ibsi"]), bin_width=25, diagnostics=True)
    assert pre.image.GetSize() == (9, 8) and pre.diagnostics["int_mask_bb_dim_y_interp_roi"] > 0
    values = sitk.GetArrayFromImage(pre.image)[sitk.GetArrayFromImage(pre.mask) > 0]
    low, high = pre.settings["resegmentRange"]
    values = values[(values >= low) & (values <= high)]
    assert features["original_firstorder_Kurtosis"] == pytest.approx(kurtosis(values, fisher=True), rel=1e-9)
