"""``nacresponse tables``: exports read back by independent readers (csv module, pandas, openpyxl, pyarrow,
pyradiomics' own batch-input parser and feature extractor)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pandas as pd
import pytest

from NACResponseLib.cli import main

PARAMS = {"imageType": {"Original": {}}, "featureClass": {"firstorder": None},
          "setting": {"normalize": True, "normalizeScale": 100, "voxelArrayShift": 300, "binWidth": 25, "label": 1}}


@pytest.fixture
def study(copy_study):
    """The small study with two hand-made tables (missing values, text with a comma and non-ASCII)."""
    frame = pd.DataFrame({"patient_id": ["P001", "P002", "P003"], "value": [1.5, np.nan, -2.25],
                          "count": pd.array([1, None, 3], dtype="Int64"), "note": ["a, b", None, "Grüße"],
                          "flag": [True, False, True]})
    copy_study.write_table("toy", frame, {"step": "test", "versions": {"numpy": np.__version__},
                                          "parameters": {"alpha": 0.05}, "inputs_sha256": {"x.nii.gz": "ab" * 32}})
    copy_study.write_table("a_rather_long_table_name_over_thirty_one", frame.head(1), {"step": "test2"})
    return copy_study


def _run(*argv) -> int:
    return main(["--progress", "none", *map(str, argv)])


def test_list_and_show(study, capsys):
    assert _run("tables", "list", study.root) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "test" in out
    assert _run("tables", "show", study.root, "toy", "--patients", "P003", "--columns", "value") == 0
    out = capsys.readouterr().out
    assert "P003" in out and "-2.25" in out and "P001" not in out and "note" not in out


def test_unknown_names_list_what_exists(study, tmp_path, capsys):
    assert _run("tables", "show", study.root, "nope") == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "toy" in err
    assert _run("tables", "show", study.root, "toy", "--columns", "zzz") == 2
    assert "zzz" in capsys.readouterr().err
    assert _run("tables", "export", study.root, "nope", "--format", "csv", "--out", tmp_path / "o") == 2
    assert not (tmp_path / "o").exists()


def test_csv_conventions(study, tmp_path):
    out = tmp_path / "csv"
    assert _run("tables", "export", study.root, "toy", "--format", "csv", "--out", out) == 0
    raw = (out / "toy.csv").read_bytes()
    text = raw.decode("utf-8")  # UTF-8, no BOM
    assert not raw.startswith(b"\xef\xbb\xbf") and "Grüße" in text
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["patient_id", "value", "count", "note", "flag"]
    assert rows[1][:4] == ["P001", "1.5", "1", "a, b"]
    assert rows[2][1:4] == ["", "", ""]  # missing -> empty cells
    assert rows[3][1] == "-2.25"  # "." decimal mark
    back = pd.read_csv(out / "toy.csv")
    assert math.isnan(back.value[1]) and back.value[2] == -2.25 and back["count"].isna()[1]


def test_xlsx_sheets_and_provenance(study, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    out = tmp_path / "x"
    assert _run("tables", "export", study.root, "--all", "--format", "xlsx", "--out", out) == 0
    book = openpyxl.load_workbook(out / "tables.xlsx", read_only=True)
    assert set(book.sheetnames) == {"toy", "a_rather_long_table_name_over_t", "provenance"}
    rows = list(book["toy"].iter_rows(values_only=True))
    assert rows[0] == ("patient_id", "value", "count", "note", "flag")
    assert rows[1][:4] == ("P001", 1.5, 1, "a, b") and rows[2][1] is None and rows[3][4] is True
    prov = list(book["provenance"].iter_rows(values_only=True))
    assert prov[0] == ("table", "sheet", "section", "key", "value")
    flat = {(r[0], r[2], r[3]): r[4] for r in prov[1:]}
    assert flat[("toy", "versions", "numpy")] == np.__version__
    assert json.loads(flat[("toy", "parameters", "alpha")]) == 0.05
    assert flat[("toy", "inputs_sha256", "x.nii.gz")] == "ab" * 32
    assert flat[("a_rather_long_table_name_over_thirty_one", "step", None)] == "test2"  # empty cell


def test_parquet_keeps_provenance(study, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "p"
    assert _run("tables", "export", study.root, "toy", "--format", "parquet", "--out", out) == 0
    table = pq.read_table(out / "toy.parquet")
    assert json.loads(table.schema.metadata[b"nacresponse.provenance"])["parameters"] == {"alpha": 0.05}
    pd.testing.assert_frame_equal(table.to_pandas(), study.read_table("toy"))


def test_non_empty_folder_refused_and_nothing_partial(study, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert _run("tables", "export", study.root, "toy", "--format", "csv", "--out", out) == 2
    assert "--overwrite" in capsys.readouterr().err and sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert _run("tables", "export", study.root, "toy", "--format", "csv", "--out", out, "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "toy.csv"]
    # a table that cannot be written in the layout: exit 2 and no file, not even the tables before it
    fresh = tmp_path / "fresh"
    assert _run("tables", "export", study.root, "--all", "--format", "pyradiomics", "--out", fresh) == 2
    assert not fresh.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".fresh")]


def test_pyradiomics_batch_layout(copy_study, tmp_path):
    """pyradiomics' own batch parser accepts the file and its extractor reproduces every feature."""
    from radiomics import featureextractor
    from radiomics.scripts import PyRadiomicsCommandLine

    from NACResponseLib.radiomics import extract_cohort

    extract_cohort(copy_study, PARAMS, mode="serial", progress_mode="none", images=["dce_early"], readers=["R1"],
                   patients=["P001", "P002"], timepoints=["pre"])
    out = tmp_path / "pr"
    assert _run("tables", "export", copy_study.root, "radiomics", "--format", "pyradiomics", "--out", out) == 0
    path = out / "radiomics_pyradiomics.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    assert header[:3] == ["Image", "Mask", "Label"] and len(rows) == 2
    first_feature = next(i for i, c in enumerate(header) if c.startswith("original_"))
    assert all(c in ("patient_id", "timepoint", "image", "reader", "method") for c in header[3:first_feature])
    cli = PyRadiomicsCommandLine([str(path)])
    cases = list(cli._processInput())
    assert [c["Mask"] for _, c in cases] == [r["Mask"] for r in rows]
    extractor = featureextractor.RadiomicsFeatureExtractor(PARAMS)
    for _, case in cases:
        result = extractor.execute(case["Image"], case["Mask"], int(case["Label"]))
        for name in header[first_feature:]:
            assert float(case[name]) == pytest.approx(float(result[name]), rel=1e-9, abs=1e-12), name


def _linked_csvs(html_path):
    import re

    return re.findall(r"href='([^']+\.csv)'", html_path.read_text())


def test_agreement_and_icc_reports_link_their_tables(copy_study):
    root = str(copy_study.root)
    assert _run("agreement", root, "--timepoints", "pre") == 0
    folder = copy_study.reports_dir / "agreement"
    assert _linked_csvs(folder / "agreement.html") == ["agreement.csv", "agreement_summary.csv"]
    back = pd.read_csv(folder / "agreement.csv", keep_default_na=False, na_values=[""])
    table = copy_study.read_table("agreement")
    assert back.shape == table.shape and np.allclose(back["dice"], table["dice"], equal_nan=True)
    rows = [{"patient_id": p, "timepoint": "pre", "image": "dce_early", "reader": r, "method": "manual", "label": 1,
             "original_firstorder_Mean": float(i + 0.1 * (r == "R2"))}
            for i, p in enumerate(copy_study.cohort.patients) for r in ("R1", "R2")]
    copy_study.write_table("radiomics", pd.DataFrame(rows), {"step": "test"})
    assert _run("icc", root, "--threshold", "0.8") == 0
    folder = copy_study.reports_dir / "icc"
    assert _linked_csvs(folder / "icc.html") == ["radiomics.csv", "icc.csv", "icc_whitelist.csv"]
    pd.testing.assert_frame_equal(pd.read_csv(folder / "radiomics.csv"), pd.DataFrame(rows))


@pytest.mark.slow
def test_model_report_links_its_tables(tmp_path):
    from test_model_cli import _make_study

    store = _make_study(tmp_path / "m", n=20)
    assert _run("model", "evaluate", store.root, "--models", "clinical,radiomics", "--folds", "3", "--bootstrap",
                "20", "--optimism", "0", "--permutations", "0", "--lasso-cv", "3", "--no-rcb") == 0
    folder = store.reports_dir / "models" / "pcr"
    linked = _linked_csvs(folder / "model_report.html")
    assert linked == ["icc_whitelist.csv", "radiomics_wide.csv", "model_predictions_pcr.csv"]
    preds = pd.read_csv(folder / "model_predictions_pcr.csv")
    pd.testing.assert_frame_equal(preds, store.read_table("model_predictions_pcr"), check_dtype=False)
    assert _run("model", "report", store.root) == 0  # regenerated from evaluation.json: links kept
    assert _linked_csvs(folder / "model_report.html") == linked


def test_demo_stage_exports_every_table_as_csv(study, tmp_path):
    from NACResponseLib.demo.run import DemoContext
    from NACResponseLib.demo.stages import s80_tables

    ctx = DemoContext(out_dir=tmp_path / "demo", study=study)
    for _ in range(2):  # a rerun refreshes the files
        result = s80_tables.run(ctx)
    assert sorted(result["tables"]) == ["a_rather_long_table_name_over_thirty_one", "toy"]
    assert pd.read_csv(tmp_path / "demo" / "tables" / "toy.csv").shape == (3, 5)
    assert "tables/toy.csv" in ctx.sections[-1][1]


def test_slicer_export_writes_the_chosen_file(study, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    from NACResponseSlicerLib.table_export import FILE_FILTER, export_result_table, export_target

    assert export_target(str(tmp_path / "t"), FILE_FILTER.split(";;")[1]).name == "t.xlsx"
    assert export_target(str(tmp_path / "t.CSV"), "").name == "t.CSV"
    path = export_result_table(study, "toy", str(tmp_path / "toy"), "CSV, UTF-8 (*.csv)")
    assert pd.read_csv(path).shape == (3, 5)
    path = export_result_table(study, "toy", str(tmp_path / "toy.xlsx"))
    book = openpyxl.load_workbook(path, read_only=True)
    assert book.sheetnames == ["toy", "provenance"]
    assert next(book["toy"].iter_rows(values_only=True)) == ("patient_id", "value", "count", "note", "flag")
    with pytest.raises(Exception, match="no table named 'nope'"):
        export_result_table(study, "nope", str(tmp_path / "n.csv"))
    assert not (tmp_path / "n.csv").exists()


def test_features_panel_export_button_writes_the_dialogs_file(study, tmp_path, monkeypatch):
    """The Export... hook on real MRML (slicer-core): the Save dialog's file is written as XLSX."""
    pytest.importorskip("slicer_core", reason="slicer-core (the test extra) is not installed")
    openpyxl = pytest.importorskip("openpyxl")
    import headless_slicer

    headless_slicer.start()
    import qt
    import slicer
    from test_slicer_mrml import FakeTasks, Recorder

    from NACResponseSlicerLib.features_panel import FeaturesPanel
    from NACResponseSlicerLib.panels import PanelLogic

    logic = PanelLogic()
    logic.study.openStudy(study.root)
    target = tmp_path / "chosen.xlsx"
    dialog = type("D", (), {"getSaveFileName": staticmethod(lambda *a: str(target))})
    monkeypatch.setattr(qt, "QFileDialog", dialog, raising=False)
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: None)
    messages = []
    monkeypatch.setattr(slicer.util, "showStatusMessage", lambda text, duration=0: messages.append(text))
    ui, tasks = Recorder(), FakeTasks()
    object.__setattr__(ui.featureTableComboBox, "currentText", "toy")
    FeaturesPanel(ui, logic.features, tasks, lambda: None).onExportTable()
    assert openpyxl.load_workbook(target, read_only=True).sheetnames == ["toy", "provenance"]
    assert tasks.ensured == [("core",), ("xlsx",)] and "chosen.xlsx" in messages[0]


def test_demo_stage_without_tables_reports_none(copy_study, tmp_path):
    from NACResponseLib.demo.run import DemoContext
    from NACResponseLib.demo.stages import s80_tables

    ctx = DemoContext(out_dir=tmp_path / "demo", study=copy_study)
    assert s80_tables.run(ctx)["tables"] == [] and not (tmp_path / "demo" / "tables").exists()
