"""Deep features on a synthetic study: tables, deltas, cache, failures, bottleneck pooling, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("torch")

from NACResponseLib.deep import RESNET_SLICES_TABLE, RESNET_TABLE, extract_bottleneck, extract_resnet50  # noqa: E402
from NACResponseLib.deep.bottleneck import pool_in_mask  # noqa: E402
from NACResponseLib.errors import InputError  # noqa: E402


def test_pool_in_mask_against_hand_computation():
    features = np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 2, 3, 3)
    coverage = np.zeros((2, 3, 3))
    coverage[0, 1, 1], coverage[1, 2, 2], coverage[0, 0, 0] = 1.0, 0.5, 0.25
    mean, peak = pool_in_mask(features, coverage)
    for c in range(2):
        f = features[c]
        assert mean[c] == pytest.approx((f[0, 1, 1] * 1.0 + f[1, 2, 2] * 0.5 + f[0, 0, 0] * 0.25) / 1.75)
        assert peak[c] == max(f[0, 1, 1], f[1, 2, 2])  # the 0.25-covered voxel is not "inside"
    small = np.zeros((2, 3, 3))
    small[1, 0, 2] = 0.2  # a tumour smaller than one feature voxel: the best-covered voxel counts
    assert pool_in_mask(features, small)[1].tolist() == [features[0, 1, 0, 2], features[1, 1, 0, 2]]
    with pytest.raises(InputError, match="does not overlap"):
        pool_in_mask(features, np.zeros((2, 3, 3)))


@pytest.mark.slow
def test_resnet_cohort_table_deltas_cache_and_provenance(copy_study):
    store = copy_study
    result = extract_resnet50(store, random_weights=True, readers=["R1"], timepoints=["pre", "post"],
                              batch_size=4)
    n = len(store.cohort)
    assert result.failed == {} and result.done == 2 * n
    table = store.read_table(RESNET_TABLE)
    assert table.shape == (n, 2 + 3 * 2048)
    assert list(table.columns[:3]) == ["patient_id", "reader", "pre__resnet50_0000"]
    assert "post__resnet50_2047" in table and "delta_abs__pre_post__resnet50_0000" in table
    np.testing.assert_allclose(table.filter(like="delta_abs__pre_post__").to_numpy(),
                               table.filter(regex="^post__").to_numpy() - table.filter(regex="^pre__").to_numpy())
    assert set(table["reader"]) == {"R1"}
    prov = store.table_provenance(RESNET_TABLE)
    assert prov["weights"]["random_weights"] is True and "RANDOM" in prov["warning"]
    assert any(k.endswith("t2w.nii.gz") for k in prov["inputs_sha256"])  # the images and masks used are hashed
    assert sum("seg" in k for k in prov["inputs_sha256"]) == 2 * n
    # the chosen slice is the largest cross-section of the mask file (counted here independently)
    slices = store.read_table(RESNET_SLICES_TABLE)
    row = slices.iloc[0]
    seg = store.cohort[row["patient_id"]].timepoint(row["timepoint"]).segmentations_by("R1")[0]
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(seg.path))))
    assert row["slice_index"] == int(np.argmax((mask == seg.label).sum(axis=(1, 2))))
    # a rerun reuses every finished ROI; other parameters recompute every ROI and replace the table
    again = extract_resnet50(store, random_weights=True, readers=["R1"], timepoints=["pre", "post"])
    assert again.done == 0 and again.reused == 2 * n
    from NACResponseLib.deep.cohort import ResNetSettings

    other = extract_resnet50(store, random_weights=True, readers=["R1"], timepoints=["pre", "post"],
                             settings=ResNetSettings(margin_mm=3.0))
    assert other.done == 2 * n and other.reused == 0
    assert store.table_provenance(RESNET_TABLE)["parameters"]["settings"]["margin_mm"] == 3.0
    assert not np.allclose(store.read_table(RESNET_TABLE).filter(regex="^pre__").to_numpy(),
                           table.filter(regex="^pre__").to_numpy())


def test_bad_inputs_are_recorded_per_roi(copy_study):
    from NACResponseLib.deep.cohort import ResNetSettings

    store = copy_study
    res = extract_resnet50(store, random_weights=True, readers=["R1"], timepoints=["pre"],
                           settings=ResNetSettings(channels=("dce_early", "perfusion")))
    failures = res.outputs["failures"]
    assert res.outputs["table"] is None and len(failures) == len(store.cohort) == len(res.failed)
    assert "perfusion" in failures[0]["error"] and failures[0]["patient_id"] in failures[0]["error"]
    # an empty mask: a clear per-ROI failure naming the file
    pid = sorted(store.cohort.patients)[0]
    tp = store.cohort[pid].timepoint("pre")
    ref = sitk.ReadImage(str(store.path(tp.image("dce_early").path)))
    empty = sitk.Image(ref.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(ref)
    rel = f"images/{pid}/pre/seg/R9__manual.nii.gz"
    sitk.WriteImage(empty, str(store.path(rel)))
    store.add_manifest_rows([{"patient_id": pid, "timepoint": "pre", "kind": "segmentation", "path": rel,
                              "reader": "R9", "method": "manual", "label": 1, "reference": "dce_early"}])
    res = extract_resnet50(store, random_weights=True, readers=["R9"])
    failures = res.outputs["failures"]
    assert res.outputs["table"] is None and len(failures) == 1
    assert "empty" in failures[0]["error"] and "R9__manual" in failures[0]["error"]
    with pytest.raises(InputError, match="no segmentation matches"):
        extract_resnet50(store, random_weights=True, readers=["nobody"])


@pytest.fixture
def seg_bundle(tmp_path):
    import torch

    from NACResponseLib.provenance import collect
    from NACResponseLib.segmentation import NetworkConfig, PreprocessConfig, build_network, save_bundle
    from NACResponseLib.segmentation.bundle import bundle_metadata

    torch.manual_seed(0)
    net_cfg, pre_cfg = NetworkConfig(), PreprocessConfig(spacing=(2.0, 2.0, 2.0))
    network = build_network(len(pre_cfg.channels), net_cfg)
    meta = bundle_metadata(name="test", preprocess=pre_cfg, network=net_cfg, roi_size=(32, 32, 16),
                           training_data_sha256="0" * 64, metrics={}, provenance=collect(step="test"))
    return save_bundle(tmp_path / "seg", network.state_dict(), meta)


def test_bottleneck_table_and_pooling(copy_study, seg_bundle):
    from NACResponseLib.segmentation import bottleneck_feature_map, load_bundle, mask_on_grid

    store = copy_study
    res = extract_bottleneck(store, seg_bundle, readers=["R1", "R2"], timepoints=["pre", "post"])
    assert res.failed == {}
    table = res.outputs["table"]
    model = load_bundle(seg_bundle, device="cpu")
    pid = sorted(store.cohort.patients)[0]
    tp = store.cohort[pid].timepoint("post")
    feats, grid = bottleneck_feature_map(model, {k: str(store.path(tp.image(k).path)) for k in model.channels})
    channels = feats.shape[0]
    assert table.shape == (2 * len(store.cohort), 2 + 3 * 2 * channels)
    seg = tp.segmentations_by("R2")[0]
    coverage = mask_on_grid(sitk.ReadImage(str(store.path(seg.path))), grid, label=seg.label)
    expected = (feats * coverage).sum(axis=(1, 2, 3)) / coverage.sum()  # the documented pooling (deep/bottleneck.py)
    row = table[(table.patient_id == pid) & (table.reader == "R2")]
    got = row[[f"post__bottleneck_mean_{c:03d}" for c in range(channels)]].to_numpy()[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    peak = row[[f"post__bottleneck_max_{c:03d}" for c in range(channels)]].to_numpy()[0]
    inside = coverage >= 0.5 if (coverage >= 0.5).any() else coverage == coverage.max()  # small tumours
    np.testing.assert_allclose(peak, feats[:, inside].max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(row.filter(like="delta_abs__pre_post__").to_numpy(),
                               row.filter(regex="^post__").to_numpy() - row.filter(regex="^pre__").to_numpy())
    assert store.table_provenance("deep_bottleneck")["model"]["weights_sha256"] == model.weights_sha256
    again = extract_bottleneck(store, seg_bundle, readers=["R1", "R2"], timepoints=["pre", "post"])
    assert again.done == 0
    # a corrected mask (same path, new content) is recomputed; nothing else is
    path = store.path(seg.path)
    corrected = sitk.BinaryDilate(sitk.ReadImage(str(path)) > 0, [1, 1, 1])
    sitk.WriteImage(sitk.Cast(corrected, sitk.sitkUInt8), str(path))
    third = extract_bottleneck(store, seg_bundle, readers=["R1", "R2"], timepoints=["pre", "post"])
    assert third.done == 1 and third.reused == 4 * len(store.cohort) - 1


def test_cli(copy_study, seg_bundle, monkeypatch, capsys):
    from NACResponseLib.cli import main
    from NACResponseLib.deep.resnet import WEIGHTS_ENV

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    study = str(copy_study.root)
    assert main(["--progress", "none", "features", "deep", study]) == 2
    assert "no ResNet-50 weights" in capsys.readouterr().err
    assert main(["--progress", "none", "features", "deep", study, "--skip-resnet"]) == 2
    assert main(["--progress", "none", "features", "deep", study, "--skip-resnet", "--seg-model", str(seg_bundle),
                 "--readers", "R1", "--timepoints", "pre"]) == 0
    assert "deep_bottleneck: " in capsys.readouterr().out
    assert copy_study.has_table("deep_bottleneck")


def test_cases_follow_reader_naming_and_modality():
    from NACResponseLib.deep import cohort_cases
    from NACResponseLib.study.model import Cohort, Image, Patient, Segmentation, Timepoint

    tp = Timepoint("pre", images=[Image("a.nii.gz", "MR", "dce_early"), Image("m.nii.gz", "MG", "mg_cc", laterality="L")],
                   segmentations=[Segmentation("s1", "R1", "manual"), Segmentation("s2", "R1", "monai"),
                                  Segmentation("s3", "R2", "manual", reference="mg_cc_L")])
    cohort = Cohort({"P1": Patient("P1", timepoints={"pre": tp})})
    assert [c.reader for c in cohort_cases(cohort, channel="dce_early")] == ["R1.manual", "R1.monai"]
    assert [c.reader for c in cohort_cases(cohort, channel="mg_cc_L")] == ["R2"]
    assert [c.key for c in cohort_cases(cohort, readers=["R1.monai"])] == ["P1__pre__R1.monai"]
    assert len(cohort_cases(cohort, readers=["R1"])) == 2 and cohort_cases(cohort, timepoints=["post"]) == []
