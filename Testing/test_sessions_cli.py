"""CLI: session create/status/next/save/export, agreement and icc on the small synthetic study."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import SimpleITK as sitk

from NACResponseLib.cli import main


def test_session_cli_round_trip(copy_study, tmp_path, capsys):
    root = str(copy_study.root)
    assert main(["session", "create", root, "--name", "cli", "--readers", "A,B", "--patients", "P001",
                 "--timepoints", "pre", "--seed", "5"]) == 0
    assert main(["session", "create", root, "--name", "bad", "--readers", "R1"]) == 2  # existing work
    capsys.readouterr()
    assert main(["session", "next", root, "--name", "cli", "--reader", "A", "--start"]) == 0
    nxt = json.loads(capsys.readouterr().out)
    assert nxt["case_id"] == "P001/pre" and nxt["own_segmentation"] is None and nxt["status"] == "open"
    gt = copy_study.cohort["P001"].timepoint("pre").segmentations_by(reader="GT")[0]
    for reader in ("A", "B"):
        assert main(["session", "save", root, "--name", "cli", "--reader", reader, "--case", "P001/pre",
                     "--mask", str(copy_study.path(gt.path))]) == 0
    capsys.readouterr()
    assert main(["session", "status", root, "--name", "cli", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["complete"] and status["readers"]["A"]["done"] == 1
    assert main(["session", "export", root, "--name", "cli", "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "B" / "P001__pre.nii.gz").is_file()
    assert main(["--progress", "none", "agreement", root, "--session", "cli"]) == 0
    table = copy_study.read_table("agreement")
    assert len(table) == 1 and table.loc[0, "dice"] == 1.0  # both readers saved the same mask
    assert copy_study.table_provenance("agreement")["session"]["name"] == "cli"


def test_agreement_and_icc_cli(copy_study, capsys):
    root = str(copy_study.root)
    assert main(["--progress", "none", "agreement", root, "--timepoints", "pre", "--include", "GT:reference",
                 "--consensus", "majority"]) == 0
    out = capsys.readouterr().out
    assert "R1 vs R2" in out and "GT vs R1" in out and "MV vs R1" in out
    assert (copy_study.reports_dir / "agreement" / "bland_altman_R1_vs_R2.png").is_file()
    # a radiomics table as features radiomics writes it: volume from the masks (reader dependent) + a noisy feature
    rows = []
    rng = np.random.default_rng(0)
    for p in copy_study.cohort:
        for tp in p.ordered_timepoints():
            for seg in tp.segmentations_by(method="manual"):
                vol = float(sitk.GetArrayFromImage(sitk.ReadImage(str(copy_study.path(seg.path)))).sum())
                rows.append({"patient_id": p.patient_id, "timepoint": tp.name, "image": "dce_early",
                             "reader": seg.reader, "method": "manual", "label": 1,
                             "original_shape_VoxelVolume": vol, "original_glcm_Noise": rng.normal()})
    copy_study.write_table("radiomics", pd.DataFrame(rows), {"step": "test"})
    assert main(["icc", root, "--threshold", "0.8", "--form", "ICC2"]) == 0
    assert "1 of 2 features kept" in capsys.readouterr().out
    wl = copy_study.read_table("icc_whitelist").set_index("feature")
    assert wl.loc["dce_early__original_shape_VoxelVolume", "kept"]
    assert not wl.loc["dce_early__original_glcm_Noise", "kept"]
    assert main(["icc", root, "--form", "ICC4"]) == 2
