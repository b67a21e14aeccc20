"""ICC filter and whitelist, radiomics-table ICC, and the perturbation generators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import InputError
from NACResponseLib.readers.perturbation import (
    grow_mask,
    perturbation_features,
    perturbations,
    randomise_contour,
    rotate,
    translate,
)
from NACResponseLib.readers.reproducibility import (
    WHITELIST_COLUMNS,
    feature_parts,
    icc_filter,
    icc_histograms,
    kept_columns,
    perturbation_icc,
    radiomics_icc,
    write_whitelist,
)


def _long_radiomics(rng, n=12, readers=("R1", "R2"), images=("dce_early", "adc")):
    """A long radiomics table: one good feature, one noisy, one constant per image."""
    rows = []
    truth = rng.normal(size=n)
    for img in images:
        for r_i, r in enumerate(readers):
            for i in range(n):
                rows.append({"patient_id": f"P{i:03d}", "timepoint": "pre", "image": img, "reader": r,
                             "method": "manual", "label": 1,
                             "original_firstorder_Mean": truth[i] + 0.05 * rng.normal(),
                             "wavelet-LLH_glcm_Contrast": rng.normal() + 0.3 * r_i,
                             "original_shape_Sphericity": 1.0})
    return pd.DataFrame(rows)


def test_radiomics_icc_matches_pingouin_and_names():
    pg = pytest.importorskip("pingouin")
    rng = np.random.default_rng(0)
    frame = _long_radiomics(rng)
    frame = frame[~((frame.reader == "R2") & (frame.patient_id == "P003"))]  # a missing delineation
    table = radiomics_icc(frame)
    row = table[(table.feature == "adc__original_firstorder_Mean") & (table.form == "ICC2")].iloc[0]
    sub = frame[frame.image == "adc"]
    ref = pg.intraclass_corr(sub, "patient_id", "reader", "original_firstorder_Mean",
                             nan_policy="omit").set_index("Type").loc["ICC(A,1)"]
    assert row["icc"] == pytest.approx(ref["ICC"], rel=1e-9) and row["n"] == 11
    assert row["feature_class"] == "firstorder" and row["image"] == "adc" and row["filter"] == "original"
    const = table[(table.feature == "dce_early__original_shape_Sphericity") & (table.form == "ICC2")].iloc[0]
    assert np.isnan(const["icc"]) and const["reason"].startswith("constant")
    with pytest.raises(InputError, match="perturbation"):
        radiomics_icc(frame[frame.reader == "R1"])


def test_filter_threshold_ci_and_reasons():
    icc_long = pd.DataFrame({
        "feature": ["a", "b", "c", "d"], "form": "ICC2", "icc": [0.95, 0.85, 0.5, np.nan],
        "ci_low": [0.9, 0.7, 0.3, np.nan], "ci_high": [0.98, 0.9, 0.7, np.nan],
        "reason": ["", "", "", "constant: no variance across cases and readers"]})
    wl = icc_filter(icc_long, form="ICC(2,1)", threshold=0.8)
    assert list(wl.columns) == WHITELIST_COLUMNS
    assert wl["kept"].tolist() == [True, True, False, False]
    assert wl.loc[2, "reason"] == "ICC 0.500 < 0.80" and wl.loc[3, "reason"].startswith("constant")
    strict = icc_filter(icc_long, threshold=0.8, use_ci_lower=True)
    assert strict["kept"].tolist() == [True, False, False, False]
    with pytest.raises(InputError, match="no ICC3 rows"):
        icc_filter(icc_long, form="ICC3")
    with pytest.raises(InputError, match="threshold"):
        icc_filter(icc_long, threshold=1.5)


def test_kept_columns_for_wide_and_delta_names():
    wl = pd.DataFrame({"feature": ["dce_early__original_firstorder_Mean", "adc__original_glcm_Idm"],
                       "kept": [True, False]})
    cols = ["patient_id", "pre__dce_early__original_firstorder_Mean", "post__adc__original_glcm_Idm",
            "delta_abs__pre_post__dce_early__original_firstorder_Mean",
            "delta_rel__pre_c2__adc__original_glcm_Idm"]
    assert kept_columns(cols, wl) == ["pre__dce_early__original_firstorder_Mean",
                                      "delta_abs__pre_post__dce_early__original_firstorder_Mean"]
    assert feature_parts("dwi_b800__wavelet-LLH_glcm_Contrast")["filter"] == "wavelet"


def test_whitelist_written_with_provenance(copy_study, tmp_path):
    from NACResponseLib.readers.sessions import create_session

    session = create_session(copy_study, "w", ["R1", "R2"], adopt_existing=True, timepoints=["pre"])
    table = radiomics_icc(_long_radiomics(np.random.default_rng(1)))
    wl = icc_filter(table)
    summary = write_whitelist(copy_study, wl, table, parameters={"form": "ICC2", "threshold": 0.8},
                              session=session)
    stored = copy_study.read_table("icc_whitelist")
    assert list(stored.columns) == WHITELIST_COLUMNS and stored["kept"].dtype == bool
    assert summary["kept"] == int(stored["kept"].sum()) == 2  # the two Mean features
    prov = copy_study.table_provenance("icc_whitelist")
    assert prov["session"]["name"] == "w" and prov["parameters"]["threshold"] == 0.8
    png = icc_histograms(table, tmp_path / "h.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def _box_mask(shape=(12, 30, 30), spacing=(1.0, 1.0, 2.0)):
    a = np.zeros(shape, np.uint8)
    a[4:8, 10:20, 10:20] = 1
    m = sitk.GetImageFromArray(a)
    m.SetSpacing(spacing)
    return m


def test_grow_mask_honours_anisotropic_spacing():
    m = _box_mask()  # x, y spacing 1 mm, z spacing 2 mm
    grown = sitk.GetArrayFromImage(grow_mask(m, 1.0))
    # Euclidean: +1 voxel in x and y but not the diagonal corners (1.41 mm); none in z (2 mm > 1 mm)
    assert grown.sum() == 4 * (12 * 12 - 4)
    shrunk = sitk.GetArrayFromImage(grow_mask(m, -1.0))
    assert shrunk.sum() == 4 * 8 * 8  # -1 voxel in x and y, z faces kept
    # 2 mm: in-plane 14x14 minus 3 voxels per corner beyond 2 mm, plus one 10x10 layer above and below
    assert sitk.GetArrayFromImage(grow_mask(m, 2.0)).sum() == 4 * (14 * 14 - 12) + 2 * 100
    assert sitk.GetArrayFromImage(grow_mask(m, -50.0)).sum() == 400  # never empties: original returned


def test_contour_translation_rotation_perturb_but_stay_close():
    from NACResponseLib.readers.agreement import compare_images

    m = _box_mask()
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.normal(100, 10, size=(12, 30, 30)).astype(np.float32))
    image.SetSpacing(m.GetSpacing())
    noisy = randomise_contour(m, rng, sigma_mm=1.0)
    d = compare_images(m, noisy)
    assert 0.6 < d["dice"] < 1.0
    moved_img, moved_mask = translate(image, m, (0.5, 0.5, 1.0))
    assert moved_mask.GetSize() == m.GetSize() and not np.allclose(
        sitk.GetArrayFromImage(moved_img), sitk.GetArrayFromImage(image))
    rot_img, rot_mask = rotate(image, m, 90.0)  # a centred square rotated by 90 degrees is itself
    assert compare_images(m, rot_mask)["dice"] > 0.95
    names = [name for name, _, _ in perturbations(image, m, seed=1)]
    assert names[0] == "original" and len(names) == len(set(names)) == 8
    again = [sitk.GetArrayFromImage(mm).sum() for _, _, mm in perturbations(image, m, seed=1)]
    assert again == [sitk.GetArrayFromImage(mm).sum() for _, _, mm in perturbations(image, m, seed=1)]


def test_perturbation_icc_on_study_with_stub_extractor(copy_study):
    """A feature that ignores the mask is perfectly reproducible; mask volume is not."""
    def extractor(image, mask):
        arr = sitk.GetArrayViewFromImage(mask)
        img = sitk.GetArrayViewFromImage(image)
        return {"original_shape_VoxelVolume": float(arr.sum()), "original_firstorder_Constant": 5.0,
                "original_firstorder_ImageMean": float(img.mean())}

    feats, failed = perturbation_features(copy_study, reader="R1", images=("dce_early", "adc"),
                                          timepoints=["pre"], extractor=extractor,
                                          config={"rotate_deg": (), "contour_noise": 1})
    assert not failed and set(feats["image"]) == {"dce_early", "adc"}
    assert feats.groupby(["patient_id", "image"]).size().eq(5).all()
    table = perturbation_icc(feats)
    icc2 = table[table.form == "ICC2"].set_index("feature")
    assert 0.5 < icc2.loc["dce_early__original_shape_VoxelVolume", "icc"] < 1.0
    assert icc2.loc["adc__original_firstorder_Constant", "reason"].startswith("constant")


@pytest.mark.slow
def test_perturbation_with_pyradiomics(copy_study):
    """Re-extraction through the project's radiomics API (first-order only, to stay fast)."""
    params = {"imageType": {"Original": {}}, "featureClass": {"firstorder": ["Mean", "Median"]},
              "setting": {"binWidth": 25, "label": 1}}
    feats, failed = perturbation_features(copy_study, reader="R1", timepoints=["pre"], params=params,
                                          config={"rotate_deg": (), "contour_noise": 0, "grow_mm": (0.5,)})
    assert not failed and "original_firstorder_Mean" in feats.columns
    table = perturbation_icc(feats)
    assert table.loc[table.form == "ICC2", "icc"].between(0.5, 1.0).all()
