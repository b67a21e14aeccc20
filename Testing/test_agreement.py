"""Spatial agreement on shapes with known answers (incl. anisotropic spacing) and Bland-Altman."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import GeometryMismatchError
from NACResponseLib.readers.agreement import (
    bland_altman,
    bland_altman_plot,
    compare_images,
    compare_masks,
    dice,
    jaccard,
    surface,
    surface_distances,
)
from NACResponseLib.segmentation.measurements import volume_ml


def _box(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def _ball(shape, centre, radius):
    idx = np.indices(shape)
    return sum((i - c) ** 2 for i, c in zip(idx, centre)) <= radius**2


def _brute_force(a, b, spacing):
    """Independent reference: all pairwise physical distances between surface voxels (no EDT)."""
    from scipy.spatial.distance import cdist

    pa = np.argwhere(surface(a)) * np.asarray(spacing)
    pb = np.argwhere(surface(b)) * np.asarray(spacing)
    d = cdist(pa, pb)
    d_ab, d_ba = d.min(axis=1), d.min(axis=0)
    return {"hd95_mm": max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)),
            "hausdorff_mm": max(d_ab.max(), d_ba.max()),
            "msd_mm": (d_ab.sum() + d_ba.sum()) / (d_ab.size + d_ba.size)}


def test_overlap_of_shifted_boxes():
    a = _box((20, 20, 20), (5, 5, 5), (15, 15, 15))
    b = _box((20, 20, 20), (7, 5, 5), (17, 15, 15))  # shifted 2 voxels: overlap 8 of 10 slices
    assert dice(a, b) == pytest.approx(0.8)
    assert jaccard(a, b) == pytest.approx(8 / 12)
    assert dice(a, a) == 1.0 and jaccard(a, np.zeros_like(a)) == 0.0


def test_single_voxels_anisotropic_distance():
    a = np.zeros((6, 6, 6), bool)
    b = np.zeros_like(a)
    a[1, 2, 2] = True
    b[3, 3, 2] = True
    spacing = (3.0, 0.5, 0.7)  # (z, y, x)
    expected = np.hypot(2 * 3.0, 1 * 0.5)
    d = surface_distances(a, b, spacing)
    assert d["hd95_mm"] == pytest.approx(expected)
    assert d["hausdorff_mm"] == pytest.approx(expected)
    assert d["msd_mm"] == pytest.approx(expected)


@pytest.mark.parametrize("axis,spacing", [(0, (3.0, 0.6, 0.6)), (2, (2.5, 0.8, 0.5))])
def test_shifted_ball_hausdorff_equals_shift(axis, spacing):
    """B = A translated by t: every point has a partner at |t|, and the extreme point has none closer."""
    a = _ball((24, 30, 30), (12, 15, 15), 7)
    b = np.roll(a, 2, axis=axis)
    d = surface_distances(a, b, spacing)
    assert d["hausdorff_mm"] == pytest.approx(2 * spacing[axis])
    assert 0 < d["msd_mm"] <= d["hd95_mm"] <= d["hausdorff_mm"]
    ref = _brute_force(a, b, spacing)
    for key, value in ref.items():
        assert d[key] == pytest.approx(value, rel=1e-12), key


def test_nested_boxes_against_brute_force_and_volume():
    spacing = (2.0, 0.7, 0.7)
    outer = _box((16, 40, 40), (2, 5, 5), (14, 35, 35))
    inner = _box((16, 40, 40), (4, 10, 10), (12, 30, 30))
    res = compare_masks(outer, inner, spacing)
    ref = _brute_force(outer, inner, spacing)
    for key, value in ref.items():
        assert res[key] == pytest.approx(value, rel=1e-12)
    assert res["volume_a_ml"] == pytest.approx(12 * 30 * 30 * 2.0 * 0.7 * 0.7 / 1000)
    assert res["volume_b_ml"] == pytest.approx(8 * 20 * 20 * 2.0 * 0.7 * 0.7 / 1000)
    assert res["dice"] == pytest.approx(2 * 8 * 400 / (12 * 900 + 8 * 400))


def test_identical_masks_and_empty_masks():
    a = _ball((10, 10, 10), (5, 5, 5), 3)
    res = compare_masks(a, a, (1, 1, 1))
    assert res["dice"] == 1.0 and res["hd95_mm"] == 0.0 and res["msd_mm"] == 0.0
    res = compare_masks(a, np.zeros_like(a), (1, 1, 1))
    assert res["dice"] == 0.0 and np.isnan(res["hd95_mm"])


def test_compare_images_uses_physical_axis_order():
    """SimpleITK spacing is (x, y, z); a shift along z must be measured with the z spacing."""
    a = _box((10, 12, 12), (3, 3, 3), (7, 9, 9)).astype(np.uint8)
    b = np.roll(a, 1, axis=0)
    ia, ib = sitk.GetImageFromArray(a), sitk.GetImageFromArray(b)
    for img in (ia, ib):
        img.SetSpacing((0.5, 0.5, 4.0))
    res = compare_images(ia, ib)
    assert res["hausdorff_mm"] == pytest.approx(4.0)
    assert volume_ml(a, None, (0.5, 0.5, 4.0)) == pytest.approx(res["volume_a_ml"])
    ib.SetSpacing((0.5, 0.5, 3.0))
    with pytest.raises(GeometryMismatchError, match="spacing"):
        compare_images(ia, ib)


def test_bland_altman_against_independent_formulas(tmp_path):
    from scipy import stats

    rng = np.random.default_rng(0)
    a = rng.normal(20, 5, size=30)
    b = a + rng.normal(0.5, 1.0, size=30)
    s = bland_altman(a, b)
    diff = a - b
    ci = stats.ttest_1samp(diff, 0.0).confidence_interval(0.95)
    assert s["bias"] == pytest.approx(np.mean(diff))
    assert (s["bias_ci_low"], s["bias_ci_high"]) == pytest.approx((ci.low, ci.high))
    import statistics

    sd = statistics.stdev(diff.tolist())
    assert s["loa_high"] == pytest.approx(np.mean(diff) + 1.959963984540054 * sd)
    assert s["loa_low_ci_high"] - s["loa_low_ci_low"] == pytest.approx(
        2 * stats.t.ppf(0.975, 29) * sd * np.sqrt(3 / 30))
    png = bland_altman_plot(a, b, tmp_path / "ba.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
