"""MONAI segmentation plumbing: grids, bundle verification, bad inputs, bottleneck, study commands."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import InputError
from NACResponseLib.segmentation import (
    InferenceConfig,
    NetworkConfig,
    PreprocessConfig,
    bottleneck_feature_map,
    build_network,
    load_bundle,
    mask_on_grid,
    save_bundle,
    segment_case,
)
from NACResponseLib.segmentation.bundle import WEIGHTS, bundle_metadata
from NACResponseLib.segmentation.preprocessing import (
    from_network_array,
    label_on_grid,
    prepare_case,
    resample_to,
    to_network_array,
)
from NACResponseLib.segmentation.training import dice

requires_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                    reason="torch is not installed (Python 3.12 here: no CPU wheel, the deep extra is left out)")

ROI = (16, 16, 8)


def _bundle(path, bias: float | None = None, channels=("dce_pre", "dce_early"), seed: int = 0):
    """A bundle with random weights; ``bias`` forces the tumour logit up (>0) or down (<0)."""
    import torch

    torch.manual_seed(seed)
    net = build_network(len(channels), NetworkConfig(init_filters=4, blocks_down=(1, 1, 1), blocks_up=(1, 1)))
    state = net.state_dict()
    if bias is not None:
        state["conv_final.2.conv.weight"].zero_()
        state["conv_final.2.conv.bias"][:] = torch.tensor([0.0, bias])
    meta = bundle_metadata(name="test", preprocess=PreprocessConfig(channels=tuple(channels)),
                           network=NetworkConfig(init_filters=4, blocks_down=(1, 1, 1), blocks_up=(1, 1)),
                           roi_size=ROI, training_data_sha256="0" * 64, metrics={}, provenance={})
    return save_bundle(path, state, meta)


def _phantom(shape_zyx=(12, 24, 20), spacing=(1.0, 1.0, 2.0)):
    rng = np.random.default_rng(0)
    pre = np.full(shape_zyx, 5.0)  # air
    pre[:, 2:-2, 2:-2] = 60.0  # body
    early = pre * 1.05
    early[4:8, 8:14, 6:12] = 150.0  # enhancing lesion
    out = []
    for a in (pre, early):
        img = sitk.GetImageFromArray((a + rng.normal(0, 1, a.shape)).astype(np.float32))
        img.SetSpacing(spacing)
        img.SetOrigin((12.0, -30.0, 5.0))
        out.append(img)
    return out


# ---- geometry -----------------------------------------------------------------------------------
def test_network_grid_is_ras_and_exact_on_matching_spacing():
    pre, early = _phantom()
    prepared = prepare_case({"dce_pre": pre, "dce_early": early},
                            PreprocessConfig(normalisation="zscore_channel"))
    assert prepared.grid.GetDirection() == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    raw = to_network_array(resample_to(early, prepared.grid))  # (x, y, z)
    expected = sitk.GetArrayFromImage(early).transpose(2, 1, 0)[::-1, ::-1, :]  # LPS -> RAS flips x and y
    np.testing.assert_allclose(raw, expected, rtol=1e-5)
    # z-score over the body per channel
    body = prepared.body
    assert abs(prepared.array[1][body].mean()) < 1e-4 and abs(prepared.array[1][body].std() - 1) < 1e-4
    assert not body[0].any() and body[5, 5, 5]


def test_real_volume_mask_round_trip_keeps_dice(shared_data):
    """Real MR image + mask -> network grid (default 1 x 1 x 2 mm, RAS) -> original grid."""
    cases = sorted((shared_data / "mr_sarcoma").glob("STS_*"))
    assert len(cases) >= 4
    for case in cases:
        image = sitk.ReadImage(str(case / "MR_T1_image.nii.gz"))
        mask = sitk.ReadImage(str(case / "MR_T1_mask.nii.gz"))
        prepared = prepare_case({"t1": image}, PreprocessConfig(channels=("t1",)), case.name)
        on_grid = label_on_grid(mask, prepared.grid)
        assert on_grid.any()
        back = resample_to(from_network_array(on_grid.astype(np.float32), prepared.grid), prepared.reference)
        d = dice(sitk.GetArrayFromImage(back) >= 0.5, sitk.GetArrayFromImage(mask) > 0)
        assert d >= 0.98, f"{case.name}: round-trip Dice {d:.4f}"


# ---- bundle -------------------------------------------------------------------------------------
@requires_torch
def test_bundle_layout_metadata_and_refusals(tmp_path):
    root = _bundle(tmp_path / "model")
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 2
    assert meta["nacresponse"]["preprocess"]["spacing"] == [1.0, 1.0, 2.0]
    assert meta["nacresponse"]["labels"] == {"0": "background", "1": "tumour"}
    inference = json.loads((root / "configs" / "inference.json").read_text())
    assert inference["network_def"]["_target_"] == "SegResNet"
    model = load_bundle(root, device="cpu")
    assert model.channels == ("dce_pre", "dce_early") and len(model.weights_sha256) == 64
    with pytest.raises(InputError, match="already exists"):
        _bundle(root)
    # A flipped byte in the weights: the SHA-256 check refuses before deserialising.
    weights = root / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256 mismatch"):
        load_bundle(root)


@requires_torch
def test_bundle_refuses_pickled_objects_and_mismatched_weights(tmp_path):
    import pickle

    from NACResponseLib.provenance import sha256_file

    root = _bundle(tmp_path / "model")
    weights = root / WEIGHTS
    # An arbitrary pickled object whose hash was "fixed up" in metadata: weights_only refuses it.
    weights.write_bytes(pickle.dumps({"conv": InputError("not a tensor")}))
    meta_path = root / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["nacresponse"]["weights_sha256"] = sha256_file(weights)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="cannot read the weights|not a plain state_dict"):
        load_bundle(root)
    # Weights for 2 input channels, metadata claiming 3: refused with a clear error.
    other = _bundle(tmp_path / "model2")
    meta = json.loads((other / "configs" / "metadata.json").read_text())
    meta["nacresponse"]["preprocess"]["channels"] = ["dce_pre", "dce_early", "dce_late"]
    (other / "configs" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="do not fit"):
        load_bundle(other)
    with pytest.raises(InputError, match="not a model bundle"):
        load_bundle(tmp_path)


# ---- inference ----------------------------------------------------------------------------------
@requires_torch
def test_missing_and_wrong_number_of_channels(tmp_path):
    model = load_bundle(_bundle(tmp_path / "model"), device="cpu")
    pre, early = _phantom()
    with pytest.raises(InputError, match=r"needs channel\(s\) \['dce_early'\]"):
        segment_case(model, {"dce_pre": pre, "t2w": early})
    with pytest.raises(InputError, match="expects 2 input channel"):
        segment_case(model, [pre])
    with pytest.raises(InputError, match="file not found"):
        segment_case(model, {"dce_pre": tmp_path / "nope.nii.gz", "dce_early": early})


@requires_torch
def test_empty_prediction_is_reported_and_full_prediction_is_cleaned(tmp_path):
    pre, early = _phantom()
    empty_model = load_bundle(_bundle(tmp_path / "empty", bias=-20.0), device="cpu")
    pred = segment_case(empty_model, [pre, early], InferenceConfig(tta=True), name="P9/pre")
    assert pred.empty and pred.volume_ml == 0.0 and "empty prediction" in pred.message
    assert pred.mask.GetSize() == pre.GetSize()
    full_model = load_bundle(_bundle(tmp_path / "full", bias=20.0), device="cpu")
    pred = segment_case(full_model, [pre, early])
    got = sitk.GetArrayFromImage(pred.mask).astype(bool)
    body = sitk.GetArrayFromImage(pre) > 30
    # Everything predicted: post-processing restricts it to the body (the breast), on the original grid.
    assert pred.mask.GetOrigin() == pre.GetOrigin() and pred.mask.GetSpacing() == pre.GetSpacing()
    assert dice(got, body) > 0.97
    assert pred.volume_ml == pytest.approx(got.sum() * 2.0 / 1000)


@requires_torch
def test_bottleneck_grid_maps_features_to_the_image(tmp_path):
    model = load_bundle(_bundle(tmp_path / "model"), device="cpu")
    pre, early = _phantom(shape_zyx=(16, 32, 32))
    blank = [sitk.Image(pre) * 0 + 60.0, sitk.Image(early) * 0 + 60.0]
    for b in blank:
        b.CopyInformation(pre)
    feats, grid = bottleneck_feature_map(model, blank)
    stride = model.network_config.stride
    assert stride == 4 and feats.shape == (16, 4, 8, 8)  # (C, z, y, x); 32 x 32 x 16 network grid / 4
    assert grid.size == (8, 8, 4) and grid.spacing == (4.0, 4.0, 8.0)
    # An impulse in the image moves the features most at the feature voxel whose centre is nearest.
    impulse = [sitk.Image(b) for b in blank]
    # Network (RAS) index (19, 11, 7) = 4k - 1 on each axis: nearest feature centre is k if feature i
    # is centred on voxel 4i (our claim), but k - 1 if it were centred on 4i + 1.5 (block centres).
    point_index = (31 - 19, 31 - 11, 7)  # x, y, z in the LPS image
    impulse[1][point_index] = 600.0
    f2, _ = bottleneck_feature_map(model, impulse)
    change = np.abs(f2 - feats).sum(axis=0)  # (z, y, x)
    kz, ky, kx = np.unravel_index(np.argmax(change), change.shape)
    grid_image = sitk.Image([int(s) for s in grid.size], sitk.sitkFloat32)
    grid_image.SetSpacing(grid.spacing)
    grid_image.SetOrigin(grid.origin)
    grid_image.SetDirection(grid.direction)
    expected = grid_image.TransformPhysicalPointToIndex(pre.TransformIndexToPhysicalPoint(point_index))
    assert (int(kx), int(ky), int(kz)) == tuple(expected)
    # Coverage of a mask on the feature grid: a box around feature voxel (3, 3, 2) that spans more than
    # its 3 x 3 x 3 neighbourhood covers that voxel fully; the coverage sums to the mask volume.
    centre = pre.TransformPhysicalPointToIndex(grid_image.TransformIndexToPhysicalPoint((3, 3, 2)))
    arr = np.zeros(sitk.GetArrayFromImage(pre).shape, np.uint8)
    arr[centre[2] - 6:centre[2] + 7, centre[1] - 6:centre[1] + 7, centre[0] - 6:centre[0] + 7] = 1
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(pre)
    cover = mask_on_grid(mask, grid)
    assert cover.shape == (4, 8, 8) and cover[2, 3, 3] == pytest.approx(1.0)
    cell_mm3 = float(np.prod(grid.spacing))
    assert cover.sum() * cell_mm3 == pytest.approx(arr.sum() * 2.0, rel=0.1)
