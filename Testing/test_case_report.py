"""``nacresponse report case``: every section is on the page and its numbers equal the study's
tables, read here independently (pandas on the Parquet files, the ``model predict`` command)."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from NACResponseLib.cli import main
from NACResponseLib.provenance import read_json


class _Tables(HTMLParser):
    """{table id: [[cell text, ...], ...]} and the ids of sections, images and scripts."""

    def __init__(self):
        super().__init__()
        self.tables, self.sections, self.images, self.scripts = {}, [], 0, {}
        self.alts: dict[str, list[str]] = {}  # section id: alt texts of its embedded figures
        self._table = self._row = self._cell = self._script = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "img" and a.get("src", "").startswith("data:image/png;base64,"):
            self.images += 1
            self.alts.setdefault(self.sections[-1] if self.sections else None, []).append(a.get("alt"))
        elif tag == "script":
            self._script = a.get("id")
            self.scripts[self._script] = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._script is not None:
            self.scripts[self._script] += data


def _parse(path) -> _Tables:
    p = _Tables()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def _fake_dlr(store, patient_id: str) -> None:
    """A DLR bundle's metadata and its stored prediction (the report reads, never runs, DLR models)."""
    folder = store.root / "models" / "dlr_c2"
    (folder / "configs").mkdir(parents=True)
    meta = {"name": "DLR-2", "nacresponse": {"kind": "dlr", "input": {"step": "c2", "baseline": "pre"},
                                             "weights_sha256": "ab" * 32, "operating_points": {}}}
    (folder / "configs" / "metadata.json").write_text(json.dumps(meta))
    from NACResponseLib.provenance import collect

    rows = pd.DataFrame([{"patient_id": patient_id, "model": "DLR-2", "step": "c2", "probability": 0.6173,
                          "class_dlr": "responder", "threshold_dlr": 0.41}])
    store.write_table("dlr_predictions", rows, collect(step="test"))


def _gradcam_map(store, patient_id: str) -> None:
    """A map on the DCE-early grid, hot inside the tumour (as features deep --gradcam writes them)."""
    tp = store.cohort[patient_id].timepoints["pre"]
    seg = tp.segmentations_by("R1")[0]
    mask = sitk.ReadImage(str(store.path(seg.path)))
    heat = (sitk.GetArrayFromImage(mask) == seg.label).astype(np.float32)
    out = sitk.GetImageFromArray(heat)
    out.CopyInformation(mask)
    path = store.root / "deep" / "gradcam" / patient_id / "pre" / "R1__resnet50.nii.gz"
    path.parent.mkdir(parents=True)
    sitk.WriteImage(out, str(path))


@pytest.fixture(scope="module")
def study(synthetic_study, tmp_path_factory):
    from NACResponseLib.modelling.cohort import train_study_model
    from NACResponseLib.study.store import StudyStore

    dest = tmp_path_factory.mktemp("case") / "study"
    shutil.copytree(synthetic_study.root, dest)
    store = StudyStore(dest)
    for args in (["seg", "measure"], ["mc", "detect"], ["mc", "extent"], ["mc", "compare"]):
        assert main(["--progress", "none", *args, str(dest)]) == 0
    train_study_model(store, dest / "models" / "pcr_clinical_logistic", kind="clinical", n_splits=2)
    return store


def _mg_patient(store) -> str:
    resmin = pd.read_parquet(store.root / "tables" / "mc_resmin.parquet")
    if not len(resmin):
        pytest.skip("the small synthetic study has no compared mammograms")
    return str(resmin["patient_id"].iloc[0])


@pytest.mark.slow
def test_case_report_sections_match_the_tables(study, tmp_path, capsys):
    pid = _mg_patient(study)
    _fake_dlr(study, pid)
    _gradcam_map(study, pid)
    out = tmp_path / "case.html"
    assert main(["--progress", "none", "report", "case", str(study.root), "--patient", pid, "--out", str(out),
                 "--pdf"]) == 0
    page = _parse(out)
    assert page.sections == [f"section-{s}" for s in ("patient", "images", "measurements", "models", "gradcam",
                                                      "mammograms", "provenance")]
    assert page.images >= 3  # delineations, Grad-CAM, mammograms
    pdf = out.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") > page.images  # a text page, then the figures

    # images with the delineations: one figure per image the patient's outlines were drawn on
    outlined = {s.reference for tp in study.cohort[pid].timepoints.values() for s in tp.segmentations}
    assert sorted(page.alts["section-images"]) == sorted(f"delineations {k}" for k in outlined)
    assert set(page.tables["patient"][2][1].split(", ")) == {
        f"{s.reader} ({s.method})" for tp in study.cohort[pid].timepoints.values() for s in tp.segmentations}
    assert page.alts["section-gradcam"] == ["Grad-CAM resnet50"]

    # volume, longest diameter, changes and RECIST: every reader's series equals tumour_measurements
    meas = pd.read_parquet(study.root / "tables" / "tumour_measurements.parquet")
    meas = meas[(meas["patient_id"] == pid) & (meas["status"] == "done")]
    # (an ultrasound outline, a 2D file, has its area in mm2 instead of a volume)
    for (reader, method), grp in meas.groupby(["reader", "method"]):
        header, *rows = page.tables[f"measurements-{reader}-{method}"]
        assert [r[0] for r in rows] == grp["timepoint"].tolist()
        flat = sitk.ReadImage(str(study.path(grp["path"].iloc[0]))).GetDimension() == 2
        assert header[1] == ("area (mm²)" if flat else "volume (ml)")
        np.testing.assert_allclose([float(r[1]) for r in rows], grp["area_mm2" if flat else "volume_ml"], atol=0.005)
        np.testing.assert_allclose([float(r[2]) for r in rows], grp["longest_inplane_diameter_mm"], atol=0.005)
        np.testing.assert_allclose([float(r[4]) for r in rows], grp["diameter_change_pct"], atol=0.05)
        assert [r[5] for r in rows] == grp["recist"].tolist()

    # the RECIST line: on each image, one per timepoint its leading delineation was measured at, as long
    # as that measurement's longest diameter, on its slice
    lines = page.tables["recist-lines"][1:]
    assert lines
    by_key = meas.set_index(["timepoint", "reader", "method"])
    for image in {r[1] for r in lines}:
        drawn = [r for r in lines if r[1] == image]
        assert len({r[2] for r in drawn}) == 1  # one delineation leads on each image
        reader, method = drawn[0][2][:-1].split(" (")
        measured = meas[(meas["reader"] == reader) & (meas["method"] == method)]
        assert [r[0] for r in drawn] == measured["timepoint"].tolist()
        for r in drawn:
            row = by_key.loc[(r[0], reader, method)]
            assert float(r[4]) == pytest.approx(row["longest_inplane_diameter_mm"], abs=0.005)
            flat = sitk.ReadImage(str(study.path(row["path"]))).GetDimension() == 2
            assert r[3] == ("" if flat else str(int(row["diameter_slice"])))
    _recist_lines_lie_on_the_outline(study, pid, meas, len(lines))

    # saved model: probability, classes and top features equal the 'model predict' command's
    capsys.readouterr()
    assert main(["model", "predict", str(study.root / "models" / "pcr_clinical_logistic"), "--study",
                 str(study.root), "--patients", pid, "--json"]) == 0
    expected = read_json(capsys.readouterr().out)[0]  # strict JSON: +inf thresholds are "Infinity"
    models = {r[0]: r for r in page.tables["models"][1:]}
    assert float(models["pcr_clinical_logistic"][4]) == pytest.approx(expected["probability"], abs=5e-4)
    classes = {r[0]: r for r in page.tables["classes-pcr_clinical_logistic"][1:]}
    for name, c in expected["classes"].items():
        assert classes[name][2] == c["label"]
        assert float(classes[name][1]) == pytest.approx(c["threshold"], abs=5e-4)
    feats = page.tables["features-pcr_clinical_logistic"][1:]
    assert [f[0] for f in feats] == [t["feature"] for t in expected["top_features"]]
    np.testing.assert_allclose([float(f[2]) for f in feats], [t["contribution"] for t in expected["top_features"]],
                               atol=5e-4)

    # DLR: the stored prediction of dlr_predictions
    assert float(models["DLR-2"][4]) == pytest.approx(0.617, abs=5e-4)
    assert page.tables["classes-DLR-2"][1:] == [["dlr", "0.410", "responder"]]

    # mammograms: extents in cm, change, categories, RESMIN flag and sentence equal mc_resmin
    resmin = pd.read_parquet(study.root / "tables" / "mc_resmin.parquet")
    resmin = resmin[resmin["patient_id"] == pid]
    rows = page.tables["mammograms"][1:]
    assert [r[0] for r in rows] == resmin["laterality"].tolist()
    np.testing.assert_allclose([float(r[1]) * 10 for r in rows], resmin["pre_extent_mm"], atol=0.05)
    np.testing.assert_allclose([float(r[2]) * 10 for r in rows], resmin["post_extent_mm"], atol=0.05)
    np.testing.assert_allclose([float(r[3]) for r in rows], resmin["change_pct"], atol=0.05)
    assert [r[4] for r in rows] == resmin["mc_category"].tolist()
    assert [r[6] == "yes" for r in rows] == resmin["resmin_flag"].astype(bool).tolist()
    assert [r[7] for r in rows] == resmin["statement"].tolist()
    # the pre/post overlay of each side with both mammograms (MC clusters, extent lines in cm)
    with_both = [row.laterality for row in resmin.itertuples()
                 if all(study.cohort[pid].timepoints[t].has_image(f"mg_{str(row.residual_view or 'CC').lower()}_"
                                                                 f"{row.laterality}") for t in ("pre", "post"))]
    assert with_both and page.alts["section-mammograms"] == [f"mammograms {side}" for side in with_both]

    # provenance: versions, model hashes (recomputed here) and input hashes
    import hashlib

    prov = json.loads(page.scripts["provenance-json"])
    model_json = study.root / "models" / "pcr_clinical_logistic" / "model.json"
    assert prov["models"]["pcr_clinical_logistic"]["model.json"] == hashlib.sha256(model_json.read_bytes()).hexdigest()
    assert prov["models"]["DLR-2"] == {"weights": "ab" * 32}
    seg = study.cohort[pid].timepoints["pre"].segmentations_by("R1")[0]
    assert prov["inputs_sha256"][seg.path] == hashlib.sha256(study.path(seg.path).read_bytes()).hexdigest()
    assert {"nacresponse", "numpy", "SimpleITK"} <= set(prov["versions"])
    assert {"tumour_measurements", "mc_resmin", "dlr_predictions"} <= set(prov["tables"])


def _recist_lines_lie_on_the_outline(study, pid, meas, n_lines: int) -> None:
    """The figure data: each line's ends, taken back from the panel's mm frame to pixel edges with the
    spacing read here from the mask file, are outline corners of the mask on the drawn slice (a pixel
    of the tumour on one side, background on another), and they are the measured length apart."""
    from NACResponseLib.reporting.case import gather_case

    lines = gather_case(study, pid)["images"]["recist"]
    assert len(lines) == n_lines
    for line in lines:
        mask = sitk.ReadImage(str(study.path(line["path"])))
        seg = next(s for s in study.cohort[pid].timepoints[line["timepoint"]].segmentations if s.path == line["path"])
        arr = sitk.GetArrayFromImage(mask) == seg.label
        plane = arr[line["slice"]] if arr.ndim == 3 else arr
        sx, sy = mask.GetSpacing()[:2]
        padded = np.pad(plane, 1)
        for x_mm, y_mm in (line["start_mm"], line["end_mm"]):
            col, row = x_mm / sx, y_mm / sy  # pixel edges: pixel c spans [c, c + 1)
            assert col == pytest.approx(round(col), abs=1e-4) and row == pytest.approx(round(row), abs=1e-4)
            around = padded[round(row):round(row) + 2, round(col):round(col) + 2]  # the 4 pixels at the corner
            assert around.any() and not around.all(), (line, around)
        (x0, y0), (x1, y1) = line["start_mm"], line["end_mm"]
        expected = meas[(meas["timepoint"] == line["timepoint"]) & (meas["reader"] == line["reader"])
                        & (meas["method"] == line["method"])]["longest_inplane_diameter_mm"].item()
        assert np.hypot(x1 - x0, y1 - y0) == pytest.approx(expected, rel=1e-6)


def test_recist_line_on_an_anisotropic_rotated_grid():
    """A 10 x 3 voxel bar on a (0.7, 2.0, 3.0) mm grid with a rotated direction: the line is the bar's
    diagonal, hypot(10 * 0.7, 3 * 2.0) mm, between its opposite corners in the panel's frame
    (x = column edge * 0.7 mm, y = row edge * 2.0 mm), on the bar's slice; a 2D mask has no slice."""
    from NACResponseLib.reporting.figures import recist_line

    arr = np.zeros((4, 12, 20), np.uint8)
    arr[2, 5:8, 4:14] = 1  # rows 5-7, columns 4-13
    arr[1, 6, 6:9] = 1
    mask = sitk.GetImageFromArray(arr)
    mask.SetSpacing((0.7, 2.0, 3.0))
    mask.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    mask.SetOrigin((5.0, -3.0, 2.0))
    line = recist_line(mask, 1, "R1 (manual)")
    assert line.slice == 2
    assert line.length_mm == pytest.approx(np.hypot(10 * 0.7, 3 * 2.0))
    ends = sorted([line.start_mm, line.end_mm])
    assert ends == [pytest.approx(e) for e in ([(2.8, 10.0), (9.8, 16.0)] if ends[0][1] < 13 else
                                              [(2.8, 16.0), (9.8, 10.0)])]
    flat = sitk.GetImageFromArray(arr[2])
    flat.SetSpacing((0.7, 2.0))
    line2d = recist_line(flat, 1, "GT (reference)")
    assert line2d.slice is None and line2d.length_mm == pytest.approx(line.length_mm)
    assert recist_line(sitk.Image(5, 5, sitk.sitkUInt8), 1, "empty") is None


@pytest.mark.slow
def test_missing_parts_are_stated_and_unknown_patient_is_exit_2(study, tmp_path, capsys):
    from NACResponseLib.study.store import StudyStore

    bare = tmp_path / "bare"
    shutil.copytree(study.root, bare, ignore=shutil.ignore_patterns("models", "tables", "deep"))
    store = StudyStore(bare)
    resmin = pd.read_parquet(study.root / "tables" / "mc_resmin.parquet")
    pid = next(p.patient_id for p in store.cohort if p.patient_id not in set(resmin["patient_id"]))
    assert main(["--progress", "none", "report", "case", str(bare), "--patient", pid]) == 0
    text = (bare / "reports" / "cases" / f"{pid}.html").read_text()
    for statement in ("has not been measured yet", "No saved model in this study", "No Grad-CAM map",
                      "No mammograms for this patient"):
        assert statement in text
    # the delineations are still drawn: one figure per image the outlines lie on (MRI, ultrasound)
    outlined = {seg.reference for tp in store.cohort[pid].ordered_timepoints() for seg in tp.segmentations}
    assert _parse(bare / "reports" / "cases" / f"{pid}.html").images == len(outlined) >= 1

    # a model outside the study is included on request; a folder that is not a model is stated, exit 1
    model = study.root / "models" / "pcr_clinical_logistic"
    out = tmp_path / "with_model.html"
    assert main(["--progress", "none", "report", "case", str(bare), "--patient", pid, "--model", str(model),
                 "--model", str(tmp_path), "--out", str(out)]) == 1
    rows = {r[0]: r for r in _parse(out).tables["models"][1:]}
    assert rows["pcr_clinical_logistic"][4] and "not a saved model folder" in rows[tmp_path.name][5]

    capsys.readouterr()
    assert main(["report", "case", str(bare), "--patient", "NOPE"]) == 2
    err = capsys.readouterr().err
    assert "no patient 'NOPE'" in err and pid in err and "manifest.csv" in err


@pytest.mark.slow
def test_prediction_panel_job_runs_in_the_background_runner(study):
    """The panel's Qt-free logic: its arguments run as a background ``nacresponse`` process and write
    the page it will open."""
    from pathlib import Path

    from NACResponseSlicerLib import cli_runner
    from NACResponseSlicerLib.case_report import case_report_job

    pid = sorted(study.cohort.patients)[0]
    arguments, page = case_report_job(study, pid)
    assert page == study.root / "reports" / "cases" / f"{pid}.html"
    lib = Path(__file__).resolve().parents[1] / "NACResponse"
    job = cli_runner.CliJob(arguments, title="case report", env=cli_runner.child_environment(None, str(lib)))
    result = job.start().wait(timeout=600)
    assert result.returncode in (0, 1), result.message  # 1: a part could not be made, the page is kept
    assert page.is_file() and f"Case report: patient {pid}" in page.read_text()
