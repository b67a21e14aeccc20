"""Functional tumour volume on a phantom with known PE/SER regions, and seeded region growing."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from NACResponseLib.errors import GeometryMismatchError, InputError
from NACResponseLib.segmentation.ftv import FTVConfig, box_from_mm, enhancement_maps, functional_tumour_volume
from NACResponseLib.segmentation.region_growing import region_grow

SPACING = (0.8, 0.8, 2.5)  # x, y, z
VOXEL_CM3 = 0.8 * 0.8 * 2.5 / 1000


def _img(a):
    img = sitk.GetImageFromArray(a.astype(np.float32))
    img.SetSpacing(SPACING)
    img.SetOrigin((-10.0, 4.0, 30.0))
    return img


def _phantom():
    """pre/early/late (z, y, x) with: tumour A (PE 100; SER 1.25 in x 5:9, 0.5 in x 9:13), weak region B
    (PE 50), air with huge PE (excluded by background), a 1-voxel speck, and an enhancing slab
    outside the box."""
    shape = (10, 20, 24)
    pre = np.full(shape, 100.0)
    pre[:, :, 0:3] = 5.0  # air
    early, late = pre * 1.2, pre * 1.25  # PE 20 %, background tissue
    early[:, :, 0:3], late[:, :, 0:3] = 20.0, 22.0  # air: PE 300 % (noise), below the background threshold
    a = (slice(2, 7), slice(4, 12), slice(5, 13))
    early[a] = 200.0
    late[a] = 180.0  # SER = 100 / 80 = 1.25 (washout)
    late[2:7, 4:12, 9:13] = 300.0  # SER = 100 / 200 = 0.5 (persistent)
    b = (slice(2, 7), slice(14, 18), slice(5, 13))
    early[b], late[b] = 150.0, 160.0  # PE 50 %
    early[8, 2, 18] = 200.0  # isolated speck
    early[:, :, 22:24] = 200.0  # outside the box
    return _img(pre), _img(early), _img(late)


BOX = (3, 0, 0, 22, 20, 10)  # x0, y0, z0, x1, y1, z1
OMIT = (5, 4, 0, 7, 12, 10)  # removes columns x 5:7 of tumour A


def test_ftv_phantom_gives_exact_mask_and_volume():
    pre, early, late = _phantom()
    res = functional_tumour_volume(pre, early, late, box=BOX, omit_boxes=[OMIT])
    expected = np.zeros((10, 20, 24), bool)
    expected[2:7, 4:12, 7:13] = True
    got = sitk.GetArrayFromImage(res.mask).astype(bool)
    assert np.array_equal(got, expected)
    assert res.n_voxels == 5 * 8 * 6
    assert res.volume_cm3 == pytest.approx(5 * 8 * 6 * VOXEL_CM3)
    assert res.ser_volumes_cm3["washout"] == pytest.approx(5 * 8 * 2 * VOXEL_CM3)
    assert res.ser_volumes_cm3["persistent"] == pytest.approx(5 * 8 * 4 * VOXEL_CM3)
    assert res.ser_volumes_cm3["plateau"] == 0.0
    pe = sitk.GetArrayFromImage(res.pe)
    ser = sitk.GetArrayFromImage(res.ser)
    assert pe[3, 5, 8] == pytest.approx(100.0) and ser[3, 5, 8] == pytest.approx(1.25)
    assert pe[3, 15, 8] == pytest.approx(50.0)
    assert res.mask.GetOrigin() == pre.GetOrigin() and res.mask.GetSpacing() == pre.GetSpacing()


def test_ftv_thresholds_change_the_mask_as_defined():
    pre, early, late = _phantom()
    low_pe = functional_tumour_volume(pre, early, late, box=BOX, config=FTVConfig(pe_threshold=40.0))
    assert low_pe.n_voxels == 5 * 8 * 8 + 5 * 4 * 8  # all of A and B
    ser_only = functional_tumour_volume(pre, early, late, box=BOX, config=FTVConfig(ser_threshold=1.0))
    assert ser_only.n_voxels == 5 * 8 * 4  # washout half of A
    no_filter = functional_tumour_volume(pre, early, late, box=BOX, config=FTVConfig(min_component_voxels=1))
    assert no_filter.n_voxels == 5 * 8 * 8 + 1  # the speck survives without the connectivity filter
    whole = functional_tumour_volume(pre, early, late, config=FTVConfig(largest_component_only=True))
    assert whole.n_voxels == 10 * 20 * 2  # the slab outside the box is the largest component


def test_enhancement_maps_formulas_and_edge_cases():
    pre = np.array([100.0, 100.0, 0.0, 100.0])
    early = np.array([170.0, 150.0, 50.0, 150.0])
    late = np.array([200.0, 140.0, 60.0, 90.0])
    pe, ser = enhancement_maps(pre, early, late)
    assert pe.tolist() == pytest.approx([70.0, 50.0, 0.0, 50.0])
    assert ser.tolist() == pytest.approx([0.7, 50 / 40, 50 / 60, 3.0])  # late below pre: capped washout


def test_ftv_bad_inputs():
    pre, early, late = _phantom()
    with pytest.raises(InputError, match="outside the image"):
        functional_tumour_volume(pre, early, late, box=(0, 0, 0, 30, 5, 5))
    shifted = sitk.Image(late)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(GeometryMismatchError, match="late"):
        functional_tumour_volume(pre, early, shifted)


def test_box_from_physical_corners():
    pre, _, _ = _phantom()
    a = pre.TransformIndexToPhysicalPoint((3, 0, 0))
    b = pre.TransformIndexToPhysicalPoint((21, 19, 9))
    assert box_from_mm(pre, b, a) == BOX


def test_region_growing_matches_connected_component_reference():
    rng = np.random.default_rng(3)
    z, y, x = np.indices((20, 40, 40))
    sphere = ((x - 20) ** 2 + (y - 18) ** 2 + ((z - 10) * 2.0) ** 2) <= 81
    other = ((x - 34) ** 2 + (y - 34) ** 2) <= 9  # as bright, not connected
    arr = np.where(sphere | other, 200.0, 50.0) + rng.uniform(-6, 6, sphere.shape)  # bounded noise
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing((1.0, 1.0, 2.0))
    grown = sitk.GetArrayFromImage(region_grow(img, (20, 18, 10))).astype(bool)
    assert np.array_equal(grown, sphere)
    # Independent reference with explicit bounds: scipy's face-connected component of the window.
    window = (arr >= 150) & (arr <= 250)
    labels, _ = ndimage.label(window)
    ref = labels == labels[10, 18, 20]
    got = sitk.GetArrayFromImage(region_grow(img, (20, 18, 10), lower=150, upper=250, fill_holes=False))
    assert np.array_equal(got.astype(bool), ref)
    # A physical-point seed gives the same region.
    point = img.TransformIndexToPhysicalPoint((20, 18, 10))
    assert np.array_equal(sitk.GetArrayFromImage(region_grow(img, point, physical=True)).astype(bool), sphere)


def test_region_growing_2d_and_bad_seeds():
    arr = np.full((30, 30), 10.0)
    arr[5:15, 8:20] = 90.0
    img = sitk.GetImageFromArray(arr)
    grown = sitk.GetArrayFromImage(region_grow(img, (10, 10), tolerance_sd=3)).astype(bool)
    assert grown.sum() == 10 * 12 and grown[5:15, 8:20].all()
    with pytest.raises(InputError, match="outside the image"):
        region_grow(img, (40, 3))
    with pytest.raises(InputError, match="outside the intensity window"):
        region_grow(img, (10, 10), lower=0, upper=50)
