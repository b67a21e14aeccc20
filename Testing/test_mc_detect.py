"""MC detector on synthetic phantoms: FROC bounds, pixel-size independence, exclusion rules, bad inputs.

Documented lower bounds (0.3 mm MCs, CNR per 0.1 mm reference pixel, 0.1 mm pixels, CC + MLO
phantoms with vessels and coarse calcifications; measured 0.93 / 0.80 / 0.60 at CNR 6 / 5 / 4):
sensitivity at 2 FP/image >= 0.85 at CNR 6 and >= 0.45 at CNR 4.  The matched-filter (ideal
observer) SNR of a 0.3 mm MC at CNR 3 is about 5.6, which bounds what any detector can reach.
"""

from __future__ import annotations

import numpy as np
import pytest

from NACResponseLib.errors import InputError
from NACResponseLib.mc.breast import segment_breast
from NACResponseLib.mc.clusters import cluster_detections
from NACResponseLib.mc.detect import DetectorParams, check_mammogram_array, detect_microcalcifications
from NACResponseLib.mc.evaluation import extent_errors, froc, sensitivity_at
from NACResponseLib.mc.phantom import _add_sphere, noise_sigma, synthesize_mammogram


def _clusters(cnr, d, extent=10.0, n=10):
    return [{"center_mm": (20, 38), "n": n, "extent_mm": extent, "diameter_mm": (d, d), "cnr": cnr},
            {"center_mm": (32, 58), "n": n, "extent_mm": extent, "diameter_mm": (d, d), "cnr": cnr}]


def _froc(cnr, d, n_images=4, spacing=0.1):
    images = []
    for seed in range(n_images):
        view = "MLO" if seed % 2 else "CC"
        im, truth = synthesize_mammogram(np.random.default_rng(100 + seed), spacing_mm=spacing, view=view,
                                         clusters=_clusters(cnr, d), n_vessels=2, n_benign=2)
        res = detect_microcalcifications(im, spacing, view=view, params=DetectorParams(threshold=3.0))
        images.append((res.detections, truth))
    return froc(images)


def test_phantom_is_physical_and_reproducible():
    cl = _clusters(5, 0.3)
    a, ta = synthesize_mammogram(np.random.default_rng(3), spacing_mm=0.1, clusters=cl)
    b, tb = synthesize_mammogram(np.random.default_rng(3), spacing_mm=0.05, clusters=cl)
    assert a.dtype == np.float32 and a.shape == (900, 700) and b.shape == (1800, 1400)
    assert ta == tb  # MC positions, sizes and CNR drawn in mm before anything pixel-dependent
    assert 0 <= a.min() and a.max() <= 4095 and np.median(a[:, -50:]) < 50  # background ~0
    xy = np.array([[t["x_mm"], t["y_mm"]] for t in ta if t["cluster"] == 0])
    assert np.max(np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])) == pytest.approx(10.0)
    # Constant dose: per-pixel noise doubles when the pixel side halves.
    assert noise_sigma(2000.0, 0.05) == pytest.approx(2 * noise_sigma(2000.0, 0.1))


def test_breast_region_chest_wall_and_pectoral():
    im, _ = synthesize_mammogram(np.random.default_rng(1), view="MLO", laterality="R", clusters=[])
    br = segment_breast(im, 0.1, view="MLO")
    assert br.chest_wall == "right"
    assert br.pectoral.sum() * 0.01 > 200  # mm^2: the pectoral triangle was found
    assert br.pectoral[:50, -50:].mean() > 0.8 and not br.pectoral[-100:].any()
    assert br.labels.any() and not (br.labels & br.mask).any()
    cc, _ = synthesize_mammogram(np.random.default_rng(1), view="CC", laterality="L", clusters=[])
    br = segment_breast(cc, 0.1, view="CC")
    assert br.chest_wall == "left" and not br.pectoral.any() and 2000 < br.area_mm2 < 5000


@pytest.mark.slow
def test_froc_sensitivity_lower_bounds():
    high = _froc(6, 0.3)
    assert sensitivity_at(high, 2.0) >= 0.85
    assert sensitivity_at(high, 1.0) >= 0.8
    low = _froc(4, 0.3)
    assert sensitivity_at(low, 2.0) >= 0.45
    assert sensitivity_at(high, 1.0) > sensitivity_at(low, 1.0)  # the curve responds to contrast


def test_detection_measures_size_and_contrast():
    im, truth = synthesize_mammogram(np.random.default_rng(5), clusters=_clusters(8, 0.5), n_benign=0)
    res = detect_microcalcifications(im, 0.1, view="CC")
    det = res.kept
    xy = det[["x_mm", "y_mm"]].to_numpy()
    hits = [np.argmin(np.hypot(*(xy - [t["x_mm"], t["y_mm"]]).T)) for t in truth]
    found = det.iloc[hits]
    assert (np.hypot(found["x_mm"] - [t["x_mm"] for t in truth], found["y_mm"] - [t["y_mm"] for t in truth])
            < 0.3).mean() >= 0.9
    # FWHM diameter of a 0.5 mm sphere projection is 0.5*sqrt(3) = 0.43 mm before pixel/filter blur.
    assert 0.3 < found["diameter_mm"].median() < 0.7
    assert 4 < found["cnr"].median() < 12 and (found["elongation"] < 2.5).all()


@pytest.mark.slow
def test_pixel_size_independence_of_extents():
    """The same phantom at 0.05, 0.07 and 0.1 mm pixels: cluster extents agree within 0.5 mm."""
    cl = [{"center_mm": (25, 45), "n": 8, "extent_mm": 12.0, "diameter_mm": (0.35, 0.45), "cnr": 8}]
    extents = {}
    for s in (0.05, 0.07, 0.1):
        im, truth = synthesize_mammogram(np.random.default_rng(11), spacing_mm=s, clusters=cl, label=False)
        res = detect_microcalcifications(im, s, view="CC")
        _, table = cluster_detections(res.detections)
        err = extent_errors(table, truth)
        extents[s] = float(err.loc[0, "extent_mm"])
        assert abs(err.loc[0, "error_mm"]) < 0.5
    assert max(extents.values()) - min(extents.values()) < 0.5


def test_exclusion_rules_coarse_rim_and_large():
    im, _ = synthesize_mammogram(np.random.default_rng(2), clusters=[], n_benign=3, n_vessels=2)
    # One 1.6 mm "MC" (too large) in flat-ish tissue, far from the coarse calcifications.
    _add_sphere(im, 15.0, 45.0, 1.6, 30 * float(noise_sigma(2000.0)), 0.1)
    res = detect_microcalcifications(im, 0.1, view="CC")
    det = res.detections
    assert (det["reason"] == "coarse_or_rim").sum() >= 3
    near_big = det[np.hypot(det["x_mm"] - 15.0, det["y_mm"] - 45.0) < 1.5]
    assert len(near_big) and not near_big["kept"].any()
    assert det["kept"].sum() <= 5  # no MCs inserted: only a few (noise) false positives survive


def test_bad_inputs():
    good = np.random.default_rng(0).normal(100, 5, (200, 200)).astype(np.float32)
    with pytest.raises(InputError, match="3D"):
        check_mammogram_array(np.zeros((5, 64, 64)), 0.1)
    with pytest.raises(InputError, match="RGB"):
        check_mammogram_array(np.zeros((64, 64, 3)), 0.1)
    with pytest.raises(InputError, match="constant"):
        check_mammogram_array(np.full((64, 64), 7.0), 0.1)
    with pytest.raises(InputError, match="spacing unknown"):
        check_mammogram_array(good, None)
    with pytest.raises(InputError, match="mammography range"):
        check_mammogram_array(good, 1.0)
    bad = good.copy()
    bad[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        check_mammogram_array(bad, 0.1)
    # Empty breast: dark background with only a burned-in label.
    empty = np.random.default_rng(1).normal(5, 1, (900, 700)).astype(np.float32)
    empty[20:80, 500:640] = 4000
    with pytest.raises(InputError, match="empty breast"):
        detect_microcalcifications(empty, 0.1)
