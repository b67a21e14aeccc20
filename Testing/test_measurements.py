"""Volumes, diameters and RECIST categories against analytic answers and pyradiomics' shape features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import InputError
from NACResponseLib.segmentation.measurements import (
    area_mm2,
    change_table,
    longest_inplane_diameter_mm,
    max_3d_diameter_mm,
    measure_mask,
    recist_category,
    volume_ml,
)


def _image(array_zyx, spacing_xyz, direction=None):
    img = sitk.GetImageFromArray(array_zyx.astype(np.uint8))
    img.SetSpacing(spacing_xyz)
    if direction is not None:
        img.SetDirection(direction)
    return img


def test_box_with_anisotropic_spacing_has_exact_answers():
    sp = (0.5, 1.0, 3.0)  # x, y, z
    arr = np.zeros((8, 12, 20), np.uint8)
    arr[2:6, 3:9, 5:15] = 1  # 4 slices, 6 rows, 10 columns
    img = _image(arr, sp)
    assert volume_ml(img) == pytest.approx(10 * 0.5 * 6 * 1.0 * 4 * 3.0 / 1000)
    d2, k = longest_inplane_diameter_mm(img)
    assert d2 == pytest.approx(math.hypot(10 * 0.5, 6 * 1.0))
    assert 2 <= k <= 5
    assert max_3d_diameter_mm(img) == pytest.approx(math.sqrt(5.0**2 + 6.0**2 + 12.0**2))
    # A rotation of the grid (direction cosines) changes no distance.
    rot = _image(arr, sp, direction=(0, 1, 0, -1, 0, 0, 0, 0, 1))
    assert max_3d_diameter_mm(rot) == pytest.approx(max_3d_diameter_mm(img))


def _ellipsoid(semi_mm, spacing_xyz, size_xyz):
    idx = np.indices(tuple(reversed(size_xyz)), dtype=float)  # z, y, x
    centre = [(n - 1) / 2 for n in reversed(size_xyz)]
    r = sum(((idx[i] - centre[i]) * s / a) ** 2 for i, (s, a) in
            enumerate(zip(reversed(spacing_xyz), reversed(semi_mm))))
    return (r <= 1).astype(np.uint8)


def test_ellipsoid_matches_analytic_size_and_pyradiomics():
    from radiomics import shape

    sp = (0.5, 0.7, 1.5)
    semi = (20.0, 12.0, 9.0)  # x is the longest axis, in plane
    arr = _ellipsoid(semi, sp, (96, 44, 16))
    img = _image(arr, sp)
    m = measure_mask(img)
    assert m["volume_ml"] == pytest.approx(4 / 3 * math.pi * np.prod(semi) / 1000, rel=0.03)
    in_plane_diag = math.hypot(sp[0], sp[1])
    assert abs(m["longest_inplane_diameter_mm"] - 2 * semi[0]) <= in_plane_diag + 1e-6
    assert abs(m["max_3d_diameter_mm"] - 2 * semi[0]) <= math.dist((0, 0, 0), sp) + 1e-6
    # Independent reference: pyradiomics measures between mesh vertices on voxel edges, we between
    # voxel corners; both agree to within one voxel diagonal, and the voxel volume exactly.
    feat = shape.RadiomicsShape(sitk.Cast(img, sitk.sitkFloat32), img)
    feat.enableAllFeatures()
    ref = feat.execute()
    assert m["volume_ml"] * 1000 == pytest.approx(float(ref["VoxelVolume"]))
    assert 0 <= m["longest_inplane_diameter_mm"] - float(ref["Maximum2DDiameterSlice"]) <= in_plane_diag
    assert 0 <= m["max_3d_diameter_mm"] - float(ref["Maximum3DDiameter"]) <= math.dist((0, 0, 0), sp)


def test_diameter_is_measured_on_the_acquisition_plane():
    # A lesion long in z (through-plane) but small in plane: RECIST in-plane diameter stays small.
    sp = (1.0, 1.0, 2.0)
    arr = np.zeros((30, 10, 10), np.uint8)
    arr[2:27, 4:7, 4:7] = 1  # 3 x 3 voxels in plane, 25 slices
    img = _image(arr, sp)
    assert longest_inplane_diameter_mm(img)[0] == pytest.approx(math.hypot(3, 3))
    assert max_3d_diameter_mm(img) == pytest.approx(math.sqrt(3**2 + 3**2 + 50**2))


def test_numpy_input_2d_and_empty_masks():
    arr = np.zeros((10, 10), np.uint8)
    arr[2:5, 1:9] = 2
    assert longest_inplane_diameter_mm(arr, label=2, spacing=(0.5, 2.0))[0] == pytest.approx(math.hypot(4.0, 6.0))
    empty = _image(np.zeros((4, 5, 6), np.uint8), (1.0, 1.0, 1.0))
    m = measure_mask(empty)
    assert m == pytest.approx({"volume_ml": 0.0, "area_mm2": np.nan, "longest_inplane_diameter_mm": 0.0,
                               "diameter_slice": None, "max_3d_diameter_mm": 0.0}, nan_ok=True)
    with pytest.raises(ValueError):
        volume_ml(arr)  # a numpy mask needs its spacing


@pytest.mark.parametrize("baseline, current, nadir, expected", [
    (50.0, 0.0, None, "CR"),
    (50.0, 35.0, None, "PR"),        # exactly -30 %
    (50.0, 35.5, None, "SD"),        # -29 %
    (50.0, 60.0, None, "PD"),        # +20 % and +10 mm
    (20.0, 24.0, None, "SD"),        # +20 % but only +4 mm
    (20.0, 25.0, None, "PD"),        # +25 % and +5 mm
    (100.0, 60.0, 50.0, "PD"),       # 40 % below baseline, but +20 % / +10 mm over the nadir
    (100.0, 58.0, 50.0, "PR"),       # +16 % over nadir: not PD; -42 % from baseline
    ([30.0, 20.0], [10.0, 5.0], None, "PR"),  # sums of several target lesions
])
def test_recist_rules(baseline, current, nadir, expected):
    assert recist_category(baseline, current, nadir) == expected


def test_recist_refuses_unmeasurable_baseline():
    with pytest.raises(InputError, match="baseline"):
        recist_category(0.0, 10.0)


def test_change_table_uses_running_nadir():
    rows = [{"timepoint": t, "longest_inplane_diameter_mm": d, "volume_ml": v}
            for t, d, v in [("pre", 40.0, 10.0), ("c2", 20.0, 3.0), ("c4", 26.0, 4.0), ("post", 0.0, 0.0)]]
    out = change_table(rows)
    assert [r["recist"] for r in out] == ["baseline", "PR", "PD", "CR"]
    assert out[1]["diameter_change_pct"] == pytest.approx(-50.0)
    assert out[2]["volume_change_pct"] == pytest.approx(-60.0)


def test_2d_outline_has_an_area_not_a_volume():
    """An ultrasound outline: 3 x 8 pixels of 0.1 x 0.2 mm is 4.8 mm2; it has no volume (an area x
    1 mm used to be reported as one), no slice and no 3D diameter; its changes are area changes."""
    arr = np.zeros((10, 12), np.uint8)
    arr[2:5, 1:9] = 1
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.1, 0.2))
    m = measure_mask(img)
    assert m["area_mm2"] == pytest.approx(3 * 8 * 0.1 * 0.2) == area_mm2(img)
    assert math.isnan(m["volume_ml"]) and math.isnan(m["max_3d_diameter_mm"]) and m["diameter_slice"] is None
    assert m["longest_inplane_diameter_mm"] == pytest.approx(math.hypot(8 * 0.1, 3 * 0.2))
    arr[2:4] = 0
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.1, 0.2))
    later = measure_mask(img)
    rows = change_table([{"timepoint": "pre", **m}, {"timepoint": "c2", **later}])
    assert rows[1]["area_change_pct"] == pytest.approx(100 * (8 - 24) / 24)
    assert math.isnan(rows[1]["volume_change_pct"])
    with pytest.raises(InputError, match="2D outline"):
        area_mm2(_image(np.ones((2, 2, 2)), (1.0, 1.0, 1.0)))
