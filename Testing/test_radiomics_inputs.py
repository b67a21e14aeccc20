"""Bad inputs give clear errors naming the file; parameter files; 2D mode."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import GeometryMismatchError, InputError
from NACResponseLib.imageio import array_to_image, write_image
from NACResponseLib.radiomics import extract, load_params

SMALL = {"imageType": {"Original": {}}, "featureClass": {"firstorder": None, "shape": None, "glcm": None},
         "setting": {"binWidth": 25, "label": 1}}


def _volume(shape=(12, 16, 16), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(100, 20, shape)).astype(np.float32)


def _ball(shape=(12, 16, 16), r=4, label=1):
    z, y, x = np.indices(shape)
    c = np.array(shape) // 2
    return (((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= r * r).astype(np.uint8) * label


def _write(tmp_path, name, array, spacing=(1.0, 1.0, 2.0), origin=None):
    path = tmp_path / name
    write_image(array_to_image(array, spacing[: array.ndim], origin), path)
    return path


@pytest.fixture
def pair(tmp_path):
    return _write(tmp_path, "img.nii.gz", _volume()), _write(tmp_path, "mask.nii.gz", _ball())


def test_valid_roi_matches_direct_pyradiomics(pair):
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    img, mask = pair
    ours = extract(img, mask, SMALL)
    direct = RadiomicsFeatureExtractor(SMALL).execute(str(img), str(mask))
    direct = {k: float(np.real(v)) for k, v in direct.items() if not k.startswith("diagnostics")}
    assert ours == direct and all(not k.startswith("diagnostics") for k in ours)
    assert ours["original_shape_VoxelVolume"] == pytest.approx(_ball().sum() * 2.0)


def test_empty_mask(tmp_path, pair):
    img, _ = pair
    empty = _write(tmp_path, "empty.nii.gz", np.zeros((12, 16, 16), np.uint8))
    with pytest.raises(InputError, match=r"empty\.nii\.gz: mask is empty"):
        extract(img, empty, SMALL)


def test_one_voxel_mask(tmp_path, pair):
    img, _ = pair
    one = np.zeros((12, 16, 16), np.uint8)
    one[6, 8, 8] = 1
    with pytest.raises(InputError, match=r"one\.nii\.gz: label 1 covers a single voxel"):
        extract(img, _write(tmp_path, "one.nii.gz", one), SMALL)


def test_label_absent(tmp_path, pair):
    img, _ = pair
    with pytest.raises(InputError, match=r"lab2\.nii\.gz: label 1 absent from mask \(labels present: \[2\]\)"):
        extract(img, _write(tmp_path, "lab2.nii.gz", _ball(label=2)), SMALL)
    # the same mask works when label 2 is asked for
    assert extract(img, tmp_path / "lab2.nii.gz", SMALL, label=2)["original_shape_VoxelVolume"] > 0


def test_geometry_mismatch(tmp_path, pair):
    img, _ = pair
    shifted = _write(tmp_path, "shifted.nii.gz", _ball(), origin=(5.0, 0.0, 0.0))
    with pytest.raises(GeometryMismatchError, match=r"img\.nii\.gz and .*shifted\.nii\.gz.*origin"):
        extract(img, shifted, SMALL)
    spacing = _write(tmp_path, "spacing.nii.gz", _ball(), spacing=(1.0, 1.0, 3.0))
    with pytest.raises(GeometryMismatchError, match="spacing"):
        extract(img, spacing, SMALL)


def test_nan_voxels(tmp_path, pair):
    _, mask = pair
    vol = _volume()
    vol[6, 8, 8] = np.nan
    vol[0, 0, 0] = np.inf
    with pytest.raises(InputError, match=r"nan\.nrrd: 2 voxels are NaN or infinite"):
        extract(_write(tmp_path, "nan.nrrd", vol), mask, SMALL)
    with pytest.raises(InputError, match="NaN"):  # an in-memory image is checked too
        extract(sitk.GetImageFromArray(vol), sitk.ReadImage(str(mask)), SMALL)


def test_2d_3d_mix(tmp_path, pair):
    img, _ = pair
    mask2d = _write(tmp_path, "m2d.nii.gz", _ball((1, 16, 16), r=10)[0], spacing=(1.0, 1.0))
    with pytest.raises(InputError, match=r"2D/3D mix: image .*img\.nii\.gz is 3D but mask .*m2d\.nii\.gz is 2D"):
        extract(img, mask2d, SMALL)


def test_missing_file_named(tmp_path, pair):
    img, _ = pair
    with pytest.raises(InputError, match=r"nothere\.nii\.gz: file not found"):
        extract(img, tmp_path / "nothere.nii.gz", SMALL)


def test_2d_mode_with_shipped_2d_parameters(tmp_path):
    """A 2D image (ultrasound / mammogram ROI) with the 2D parameter set gives shape2D features."""
    rng = np.random.default_rng(3)
    image = _write(tmp_path, "us.nii.gz", rng.normal(80, 15, (64, 64)).astype(np.float32), spacing=(0.1, 0.1))
    mask = _write(tmp_path, "us_mask.nii.gz", _ball((1, 64, 64), r=20)[0], spacing=(0.1, 0.1))
    features = extract(image, mask, "breast_2d")
    assert "original_shape2D_PixelSurface" in features and not any("_shape_" in k for k in features)
    assert features["original_shape2D_PixelSurface"] == pytest.approx(_ball((1, 64, 64), r=20).sum() * 0.01)
    assert any(k.startswith("wavelet-") for k in features) and any(k.startswith("log-sigma-") for k in features)


def test_shipped_parameter_files():
    breast = load_params("breast")
    s = breast["setting"]
    assert s["resampledPixelSpacing"] == [1, 1, 1] and s["interpolator"] == "sitkBSpline"
    assert s["binWidth"] == 25 and s["normalize"] is True
    assert set(breast["featureClass"]) == {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}
    assert set(breast["imageType"]) == {"Original", "Wavelet", "LoG"}
    for name in ("breast_2d", "fast", "ibsi"):
        assert load_params(name)


def test_default_protocol_feature_count(pair):
    """Original + 8 wavelet decompositions + 3 LoG sigmas, seven classes: 1130 features."""
    img, mask = pair
    features = extract(img, mask)  # default = breast protocol
    assert len(features) == 1130
    wavelets = {k.split("_")[0] for k in features if k.startswith("wavelet-")}
    assert wavelets == {f"wavelet-{a}{b}{c}" for a in "LH" for b in "LH" for c in "LH"}


def test_user_parameter_files(tmp_path):
    y = tmp_path / "p.yaml"
    y.write_text("imageType:\n  Original: {}\nfeatureClass:\n  firstorder:\nsetting:\n  binWidth: 10\n")
    j = tmp_path / "p.json"
    j.write_text('{"imageType": {"Original": {}}, "featureClass": {"firstorder": null}, "setting": {"binWidth": 10}}')
    from NACResponseLib.radiomics import params_hash

    assert params_hash(load_params(y)) == params_hash(load_params(j))
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting:\n  binWidht: 10\n")
    with pytest.raises(InputError, match=r"bad\.yaml: invalid pyradiomics parameters.*binWidht"):
        load_params(bad)
    with pytest.raises(InputError, match="not found"):
        load_params(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("imageType: [unclosed\n")
    with pytest.raises(InputError, match="cannot parse"):
        load_params(broken)


def test_round_lesion_axis_lengths_are_real_without_complex_warning(tmp_path):
    """A ball (r = 4 voxels, 1 x 1 x 2 mm) resampled to 1 mm, as the breast protocol does: two equal
    principal moments, for which pyradiomics' general eigen-solver returns a complex pair (imaginary
    parts ~1e-17); the float cast used to raise a ComplexWarning.  The values must be real and equal
    4 sqrt(eigenvalue) of the population covariance of the voxel centres in mm (pyradiomics'
    definition), computed here with the symmetric solver: each 2 mm voxel becomes two 1 mm voxels
    0.5 mm either side of its centre."""
    import warnings

    ball = _ball(r=4)
    img, mask = _write(tmp_path, "img.nii.gz", _volume()), _write(tmp_path, "ball.nii.gz", ball)
    params = {"imageType": {"Original": {}}, "featureClass": {"shape": None},
              "setting": {"label": 1, "resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkNearestNeighbor"}}
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        features = extract(img, mask, params)
    centres = np.argwhere(ball)[:, ::-1] * np.array([1.0, 1.0, 2.0])  # (x, y, z) in mm
    coords = np.concatenate([centres + [0, 0, -0.5], centres + [0, 0, 0.5]])
    least, minor, major = np.linalg.eigvalsh(np.cov(coords.T, bias=True))
    assert least == pytest.approx(minor)  # the degenerate case (x and y)
    for name, expected in (("MajorAxisLength", 4 * np.sqrt(major)), ("MinorAxisLength", 4 * np.sqrt(minor)),
                           ("LeastAxisLength", 4 * np.sqrt(least)), ("Elongation", np.sqrt(minor / major)),
                           ("Flatness", np.sqrt(least / major))):
        value = features[f"original_shape_{name}"]
        assert type(value) is float and value == pytest.approx(expected, rel=1e-9), name
