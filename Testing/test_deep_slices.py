"""Slice selection, resampling onto the DCE grid, cropping and normalisation (no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.deep.slices import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    crop_window,
    largest_slice_index,
    map_to_reference,
    prepare_input,
    resample_to,
)
from NACResponseLib.errors import InputError


def image(array, spacing, origin=(0.0, 0.0, 0.0)):
    img = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


def physical_grid(img):
    """Physical (x, y, z) coordinates of every voxel, arrays in (z, y, x) order (axis-aligned grids)."""
    size, sp, org = img.GetSize(), img.GetSpacing(), img.GetOrigin()
    z, y, x = np.meshgrid(*(org[d] + sp[d] * np.arange(size[d]) for d in (2, 1, 0)), indexing="ij")
    return x, y, z


def test_largest_slice_on_known_shapes():
    # a double cone: disc radius grows to slice 6 then shrinks, so slice 6 has the largest area
    zz, yy, xx = np.mgrid[0:12, -10:11, -10:11]
    radius = 8 - np.abs(zz - 6)
    cone = (yy ** 2 + xx ** 2) <= radius ** 2
    assert largest_slice_index(cone) == 6
    # a box whose largest section is off-centre
    mask = np.zeros((10, 20, 20), bool)
    mask[2:5, 5:10, 5:10] = True
    mask[7, 0:20, 0:20] = True
    assert largest_slice_index(mask) == 7
    # a tie (slices 3..5 equal) goes to the slice nearest the centre of mass
    tie = np.zeros((10, 8, 8), bool)
    tie[3:6, 2:6, 2:6] = True
    assert largest_slice_index(tie) == 4
    assert largest_slice_index(np.ones((5, 5))) == 0  # a 2D mask is one slice
    with pytest.raises(InputError, match="empty"):
        largest_slice_index(np.zeros((4, 4, 4)))


def test_resampling_onto_the_dce_grid_is_exact_for_linear_intensity():
    # reference (DCE) grid 1 x 1 x 2 mm; ADC on a coarser, shifted grid.  A linear function of the
    # physical position is reproduced exactly by linear interpolation inside the coarse grid.
    dce = image(np.zeros((10, 40, 40)), (1.0, 1.0, 2.0))
    adc_shape, adc_sp, adc_org = (7, 22, 22), (2.0, 2.0, 4.0), (-1.5, -2.0, -3.0)
    adc = image(np.zeros(adc_shape), adc_sp, adc_org)
    x, y, z = physical_grid(adc)
    adc = image(3.0 * x - 2.0 * y + 0.5 * z + 7.0, adc_sp, adc_org)
    out = resample_to(adc, dce)
    assert out.GetSize() == dce.GetSize() and out.GetSpacing() == dce.GetSpacing()
    rx, ry, rz = physical_grid(dce)
    expected = 3.0 * rx - 2.0 * ry + 0.5 * rz + 7.0
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), expected, atol=1e-3)
    assert resample_to(dce, dce) is dce  # same grid: untouched


def test_prepare_input_maps_channels_in_order_and_crops_around_the_tumour():
    shape, sp = (12, 64, 64), (1.0, 1.0, 2.0)
    x, y, z = physical_grid(image(np.zeros(shape), sp))
    dce = image(10.0 * x, sp)  # DCE: ramp along x
    t2 = image(10.0 * y, sp)  # T2: ramp along y
    adc_sp = (2.0, 2.0, 4.0)
    adc_grid = image(np.zeros((6, 32, 32)), adc_sp)
    ax, ay, az = physical_grid(adc_grid)
    adc = image(-(ax + ay), adc_sp)  # ADC, coarser grid: ramp along -(x + y)
    mask = np.zeros(shape, np.uint8)
    mask[5, 20:40, 24:34] = 1  # 20 mm (rows) x 10 mm (cols) on slice 5
    mask[4, 28:32, 28:32] = 1
    mask_img = image(mask, sp)
    item = prepare_input([dce, adc, t2], mask_img, names=["dce_early", "adc", "t2w"], margin_mm=5.0)
    assert item.array.shape == (3, 224, 224) and item.array.dtype == np.float32
    assert item.slice_index == 5 and item.slices == [5]
    assert item.window.half_mm == pytest.approx(20 / 2 + 5.0)
    # channels keep their identity: DCE varies along columns, T2 along rows, ADC along -(rows + cols)
    unit = item.array * IMAGENET_STD[:, None, None] + IMAGENET_MEAN[:, None, None]
    dce_c, adc_c, t2_c = unit
    assert np.all(np.diff(dce_c[112, 10:-10]) >= 0) and np.ptp(dce_c[10:-10, 112]) < 1e-6
    assert np.all(np.diff(t2_c[10:-10, 112]) >= 0) and np.ptp(t2_c[112, 10:-10]) < 1e-6
    assert np.corrcoef(adc_c[20:-20, 20:-20].ravel(), -(np.add.outer(np.arange(184), np.arange(184))).ravel())[0, 1] > 0.99
    assert unit.min() >= -1e-6 and unit.max() <= 1 + 1e-6
    # the tumour (20 x 10 mm in a 30 x 30 mm window) covers 2/3 x 1/3 of the crop
    assert item.mask.mean() == pytest.approx((20 / 30) * (10 / 30), rel=0.05)
    rows = np.flatnonzero(item.mask.any(axis=1))
    assert rows[0] == pytest.approx(224 * 5 / 30, abs=2) and rows[-1] == pytest.approx(224 * 25 / 30, abs=2)


def test_neighbour_averaging_and_imagenet_normalisation():
    shape, sp = (5, 32, 32), (1.0, 1.0, 3.0)
    values = np.zeros(shape, np.float32)
    for k in range(5):
        values[k] = k
    values[:, :, :16] += 100.0  # a left/right step in every slice, so percentiles differ
    mask = np.zeros(shape, np.uint8)
    mask[2, 10:20, 10:20] = 1
    item = prepare_input([image(values, sp)], image(mask, sp), average_neighbours=True, margin_mm=50)
    assert item.slices == [1, 2, 3]
    # one channel is repeated on all three; its scaled value maps to (v - mean) / std per channel
    unit = item.array * IMAGENET_STD[:, None, None] + IMAGENET_MEAN[:, None, None]
    np.testing.assert_allclose(unit[0], unit[1], atol=1e-5)
    np.testing.assert_allclose(unit[0], unit[2], atol=1e-5)
    assert item.channels == ["channel0"] * 3


def test_two_dimensional_roi_takes_the_same_path():
    us = sitk.GetImageFromArray(np.tile(np.linspace(0, 1, 80, dtype=np.float32), (60, 1)))
    us.SetSpacing((0.2, 0.2))
    mask = np.zeros((60, 80), np.uint8)
    mask[20:40, 30:50] = 1
    m = sitk.GetImageFromArray(mask)
    m.SetSpacing((0.2, 0.2))
    item = prepare_input([us], m, names=["us_bmode"], margin_mm=1.0)
    assert item.array.shape == (3, 224, 224) and item.slice_index == 0
    assert item.channels == ["us_bmode"] * 3


def test_empty_mask_and_bad_channel_count():
    img = image(np.ones((4, 16, 16)), (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="empty"):
        prepare_input([img], image(np.zeros((4, 16, 16)), (1.0, 1.0, 1.0)))
    with pytest.raises(InputError, match="1 to 3"):
        prepare_input([img] * 4, img)
    with pytest.raises(InputError, match="empty"):
        crop_window(np.zeros((5, 5)), (1.0, 1.0))


def test_window_maps_back_onto_the_source_slice():
    shape, sp = (6, 50, 60), (0.8, 1.2, 3.0)  # anisotropic pixels (x 0.8 mm, y 1.2 mm)
    mask = np.zeros(shape, np.uint8)
    mask[3, 20:30, 25:35] = 1
    item = prepare_input([image(np.random.default_rng(1).random(shape), sp)], image(mask, sp), margin_mm=6.0)
    ones = map_to_reference(np.ones((7, 7), np.float32), item)
    vol = sitk.GetArrayFromImage(ones)
    assert ones.GetSpacing() == sp and vol.shape == shape
    assert vol[[0, 1, 2, 4, 5]].max() == 0  # only the chosen slice carries the map
    # window: tumour extent max(10 rows * 1.2, 10 cols * 0.8) = 12 mm, + 6 mm margin each side = 24 mm
    half = item.window.half_mm
    assert half == pytest.approx(12.0)
    rows, cols = np.nonzero(vol[3] > 0.5)
    centre_r, centre_c = item.window.centre
    assert (rows.max() - rows.min() + 1) * 1.2 == pytest.approx(2 * half, abs=1.2 * 1.01)
    assert (cols.max() - cols.min() + 1) * 0.8 == pytest.approx(2 * half, abs=0.8 * 1.01)
    assert rows.mean() == pytest.approx(centre_r, abs=0.6) and cols.mean() == pytest.approx(centre_c, abs=0.6)
    # a gradient map keeps its orientation: left of the window low, right high
    ramp = np.tile(np.linspace(0, 1, 7, dtype=np.float32), (7, 1))
    back = sitk.GetArrayFromImage(map_to_reference(ramp, item))[3]
    r = int(round(centre_r))
    inside = np.flatnonzero(back[r] > 0)
    assert np.all(np.diff(back[r, inside[1:]]) >= -1e-6)


def test_downsampled_crop_averages_fine_texture_instead_of_aliasing():
    """A 0.1 mm checkerboard read into 0.4 mm window pixels: an ideal low-pass gives its mean 0.5
    everywhere; plain interpolation at the window's pixel centres returns the squares' values."""
    from NACResponseLib.deep.slices import CropWindow

    rows, cols = np.indices((400, 400))
    board = ((rows + cols) % 2).astype(np.float32)
    window = CropWindow(centre=(200.0, 200.0), half_mm=9.6, spacing=(0.1, 0.1), size=48)  # 0.4 mm pixels
    out = window.sample(board)
    assert abs(out.mean() - 0.5) < 0.02 and out.std() < 0.05, (out.mean(), out.std())
    # a linear ramp is left as it is (the filter preserves linear functions): analytic values
    ramp = (rows * 0.1).astype(np.float32)  # mm
    expected = window.coordinates()[0] * 0.1
    np.testing.assert_allclose(window.sample(ramp), expected, atol=1e-3)
    # labels are never blurred
    mask = (np.hypot(rows - 200, cols - 200) < 50).astype(np.float32)
    assert set(np.unique(window.sample(mask, order=0))) <= {0.0, 1.0}


def test_upsampled_crop_is_plain_interpolation():
    from scipy.ndimage import map_coordinates

    from NACResponseLib.deep.slices import CropWindow

    plane = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    window = CropWindow(centre=(32.0, 32.0), half_mm=10.0, spacing=(0.7, 0.7), size=48)  # 0.42 mm < 0.7 mm
    np.testing.assert_allclose(window.sample(plane),
                               map_coordinates(plane, window.coordinates(), order=1, mode="constant"), atol=1e-6)
