"""MC study tables, spacing rules for files, user edits, RESMIN comparison and the ``mc`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import InputError
from NACResponseLib.imageio import write_image
from NACResponseLib.mc.cohort import load_mammogram
from NACResponseLib.mc.phantom import synthesize_mammogram


@pytest.fixture(scope="module")
def phantom():
    cl = [{"center_mm": (25, 45), "n": 6, "extent_mm": 10.0, "diameter_mm": (0.3, 0.5), "cnr": 8}]
    return synthesize_mammogram(np.random.default_rng(4), clusters=cl)


def _write(tmp_path, array, spacing=None, name="mg.nii.gz"):
    img = sitk.GetImageFromArray(array)
    if spacing:
        img.SetSpacing(spacing)
    path = tmp_path / name
    write_image(img, path)
    return path


def test_spacing_rules(tmp_path, phantom):
    im, _ = phantom
    with_sp = _write(tmp_path, im, (0.1, 0.1), "a.nii.gz")
    arr, s, info = load_mammogram(with_sp)
    assert s == pytest.approx(0.1) and info["spacing_source"] == "file" and arr.shape == im.shape
    no_sp = _write(tmp_path, im, None, "b.nii.gz")
    with pytest.raises(InputError, match="b.nii.gz: the file has no pixel spacing"):
        load_mammogram(no_sp)
    assert load_mammogram(no_sp, manifest_spacing_mm=0.07)[2]["spacing_source"] == "manifest"
    assert load_mammogram(with_sp, spacing_mm=0.05)[1] == pytest.approx(0.05)


def test_non_mammogram_files(tmp_path):
    vol = _write(tmp_path, np.random.default_rng(0).normal(size=(4, 64, 64)).astype(np.float32), (0.1, 0.1, 1.0),
                 "vol.nii.gz")
    with pytest.raises(InputError, match="3D volume"):
        load_mammogram(vol)
    rgb = sitk.GetImageFromArray(np.zeros((64, 64, 3), np.uint8), isVector=True)
    rgb.SetSpacing((0.1, 0.1))
    write_image(rgb, tmp_path / "rgb.nii.gz")
    with pytest.raises(InputError, match="colour"):
        load_mammogram(tmp_path / "rgb.nii.gz")
    const = _write(tmp_path, np.full((64, 64), 3, np.float32), (0.1, 0.1), "const.nii.gz")
    with pytest.raises(InputError, match="constant"):
        load_mammogram(const)
    mr = _write(tmp_path, np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32), (0.7, 0.7), "mr.nii.gz")
    with pytest.raises(InputError, match="mammography range"):
        load_mammogram(mr)


@pytest.mark.slow
def test_study_detect_extent_compare_and_cli(copy_study, tmp_path, capsys):
    from NACResponseLib.cli import main

    store = copy_study
    if not any(i.role.startswith("mg_") for p in store.cohort for t in p.timepoints.values() for i in t.images):
        pytest.skip("the small synthetic study has no mammograms")
    assert main(["mc", "detect", str(store.root)]) == 0
    images = store.read_table("mc_images")
    assert (images["status"] == "ok").all() and np.allclose(images["spacing_mm"], 0.1)
    det = store.read_table("mc_detections")
    assert {"x_mm", "y_mm", "x_phys_mm", "score", "diameter_mm", "kept", "reason"} <= set(det.columns)
    assert store.table_provenance("mc_detections")["step"] == "mc.detect"
    # Finished work is not recomputed.
    assert main(["mc", "detect", str(store.root)]) == 0
    assert "0 computed" in capsys.readouterr().out

    capsys.readouterr()
    assert main(["mc", "extent", str(store.root), "--rule", "birads-grouped"]) == 0
    assert "cluster rule birads-grouped: >= 5 MCs within 10 mm in a core linked at 5 mm" in capsys.readouterr().out
    assert store.table_provenance("mc_clusters")["cluster_rule"]["name"] == "birads-grouped"
    assert main(["mc", "extent", str(store.root)]) == 0
    rule = store.table_provenance("mc_clusters")["cluster_rule"]
    assert rule["name"] == "default" and rule["min_count"] == 3 and rule["link_distance_mm"] == 10.0
    clusters = store.read_table("mc_clusters")
    assert len(clusters) and (clusters["extent_mm"] > 0).all()

    # A user removes every MC of the largest post cluster: downstream extent and category follow.
    big = clusters[clusters["timepoint"] == "post"].sort_values("extent_mm").iloc[-1]
    mcs = store.read_table("mc_mcs")
    sel = mcs[(mcs["patient_id"] == big["patient_id"]) & (mcs["timepoint"] == "post") & (mcs["image"] == big["image"])
              & mcs["kept"]]
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"remove": sel[["x_mm", "y_mm"]].to_numpy().tolist()}))
    assert main(["mc", "extent", str(store.root), "--edits", str(edits), "--patient", big["patient_id"],
                 "--timepoint", "post", "--image", big["image"]]) == 0
    after = store.read_table("mc_clusters")
    same = after[(after["patient_id"] == big["patient_id"]) & (after["timepoint"] == "post")
                 & (after["image"] == big["image"])]
    assert len(same) == 0
    assert any(r["action"] == "mc.edit" for r in store.audit_log())

    recist = tmp_path / "recist.csv"
    recist.write_text("patient_id,recist\n" + "".join(f"{p.patient_id},PR\n" for p in store.cohort))
    assert main(["mc", "compare", str(store.root), "--recist", str(recist)]) == 0
    res = store.read_table("mc_resmin")
    assert len(res) and set(res["mc_category"]) <= {"CR", "PR", "SD", "PD", "none"}
    assert (res["resmin_flag"] == res["mc_category"].isin(["SD", "PD"])).all()
    edited = res[res["patient_id"] == big["patient_id"]]
    assert (edited["tumour_source"] == "user").all()

    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,recist\nP001,XX\n")
    assert main(["mc", "compare", str(store.root), "--recist", str(bad)]) == 2
