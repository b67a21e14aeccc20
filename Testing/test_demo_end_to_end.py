"""The README's main job: every demo stage runs end to end on a small synthetic cohort."""

from __future__ import annotations

import importlib.util
import json

import pytest

from NACResponseLib.cli import main

requires_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                    reason="torch is not installed (Python 3.12 here: no CPU wheel, the deep extra is left out)")


@pytest.mark.slow
@requires_torch
def test_quick_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    # 20 patients (4 with pCR at seed 0): the smallest cohort the 3-fold model evaluation accepts.
    code = main(["--progress", "none", "demo", "--out", str(out), "--quick", "--patients", "20"])
    summary = json.loads((out / "demo_summary.json").read_text())
    failed = {k: v.get("error") for k, v in summary["stages"].items() if v["status"] != "ok"}
    assert code == 0 and not failed, failed
    expected = {"s10_study", "s20_radiomics", "s30_agreement", "s40_segmentation", "s50_deep", "s60_models",
                "s70_microcalcifications", "s75_dlr", "s80_tables", "s90_case_report"}
    assert expected <= set(summary["stages"])
    report = (out / "report.html").read_text()
    for title in ("validate", "Radiomics", "ICC", "segmentation", "Deep features", "Response models",
                  "Microcalcifications", "Deep-learning radiomics on ultrasound", "Case report"):
        assert title in report
    tables = {p.stem for p in (out / "study" / "tables").glob("*.parquet")}
    assert {"radiomics", "radiomics_wide", "icc_whitelist", "deep_bottleneck", "mc_resmin", "dlr_evaluation",
            "dlr_stepwise"} <= tables
    assert {p.stem for p in (out / "tables").glob("*.csv")} == tables  # the demo's CSV exports
    # A rerun reuses finished work instead of recomputing it; only ROIs that later stages added
    # (MONAI / FTV segmentations) are new.
    first = summary["stages"]["s20_radiomics"]
    assert main(["--progress", "none", "demo", "--out", str(out), "--quick", "--patients", "20",
                 "--stages", "study,radiomics"]) == 0
    rerun = json.loads((out / "demo_summary.json").read_text())["stages"]["s20_radiomics"]
    assert rerun["status"] == "ok" and rerun["reused"] == first["rois"] > 0
    assert rerun["computed"] == rerun["rois"] - first["rois"]
