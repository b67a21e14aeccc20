"""End to end on a small study with synthetic feature tables: ``model evaluate|train|predict|report``."""

import json

import numpy as np
import pandas as pd
import pytest

from NACResponseLib.cli import main
from NACResponseLib.provenance import collect
from NACResponseLib.study.store import StudyStore


def _make_study(root, n=40, seed=0):
    rng = np.random.default_rng(seed)
    pcr = np.array([1, 0] * (n // 2))
    clinical = {}
    for i in range(n):
        rcb = 0.0 if pcr[i] else float(np.clip(1.0 + 2 * rng.random(), 0.2, 4))
        clinical[f"P{i:03d}"] = {"age": float(rng.normal(50, 10)), "er": int(rng.integers(0, 2)),
                                 "pr": int(rng.integers(0, 2)), "her2": int(pcr[i] if rng.random() < 0.7 else 1 - pcr[i]),
                                 "ki67": float(rng.normal(25 + 15 * pcr[i], 8)),
                                 "subtype": str(rng.choice(["TN", "HR+/HER2-", "HR-/HER2+"])),
                                 "pcr": int(pcr[i]), "rcb_index": rcb, "miller_payne": int(5 if pcr[i] else rng.integers(1, 5))}
    rows = [{"patient_id": pid, "timepoint": "pre", "kind": "image", "path": f"images/{pid}/pre/dce_early.nii.gz",
             "modality": "MR", "role": "dce_early"} for pid in clinical]  # tables only: images never read
    store = StudyStore.create(root, rows, clinical)
    pids = list(clinical)
    rad = {}
    for tp in ("pre", "c2", "post"):
        for j in range(12):
            shift = {"pre": 0.3, "c2": 0.9, "post": 1.4}[tp] if j < 2 else 0.0
            rad[f"{tp}__dce_early__original_firstorder_F{j}"] = rng.normal(0, 1, n) + shift * pcr
    rad["delta_rel__pre_c2__dce_early__original_firstorder_F0"] = rad["c2__dce_early__original_firstorder_F0"] - rad["pre__dce_early__original_firstorder_F0"]
    wide = pd.DataFrame(rad)
    wide.insert(0, "patient_id", pids)
    wide.insert(1, "reader", "R1")
    other = wide.copy()
    other["reader"] = "R2"
    other = other.iloc[:30]
    store.write_table("radiomics_wide", pd.concat([wide, other]), collect(step="test"))
    deep = pd.DataFrame({f"{tp}__bn_{k:03d}": rng.normal(0, 1, n) + (0.8 * pcr if k == 0 and tp != "pre" else 0)
                         for tp in ("pre", "c2") for k in range(8)})
    deep.insert(0, "patient_id", pids)
    deep.insert(1, "reader", "R1")
    store.write_table("deep_bottleneck", deep, collect(step="test"))
    wl = pd.DataFrame({"feature": [f"dce_early__original_firstorder_F{j}" for j in range(12)],
                       "icc": 0.9, "ci_low": 0.8, "ci_high": 0.95, "form": "ICC2",
                       "kept": [j != 5 for j in range(12)], "reason": ""})
    store.write_table("icc_whitelist", wl, collect(step="test"))
    return store


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return _make_study(tmp_path_factory.mktemp("mstudy") / "study")


@pytest.mark.slow
def test_evaluate_train_predict_report(study, tmp_path, capsys):
    rc = main(["--progress", "none", "model", "evaluate", str(study.root), "--folds", "3", "--bootstrap", "200",
               "--optimism", "5", "--permutations", "2", "--lasso-cv", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    for kind in ("clinical", "radiomics", "deep", "combined"):
        assert f"{kind}: AUC" in out
    folder = study.reports_dir / "models" / "pcr"
    res = json.loads((folder / "evaluation.json").read_text())
    assert res["models"]["radiomics"]["metrics"]["auc"]["estimate"] > 0.7
    assert "dce_early__original_firstorder_F5" not in " ".join(res["models"]["radiomics"]["selection"]["features"])
    assert len(res["delong"]) == 6 and {"z", "p"} <= set(res["delong"][0])
    assert [r["step"] for r in res["stepwise"]["table"]] == ["c2", "post", "not flagged"]
    assert res["stepwise"]["weights"] == {"c2": 0.8, "post": 0.2}
    assert "rcb" in res and "permutation" in res
    assert res["provenance"]["step"] == "model evaluate" and res["provenance"]["inputs_sha256"]
    html = (folder / "model_report.html").read_text()
    for part in ("ROC", "Calibration", "DeLong", "Stepwise", "Per-case", "Selected features"):
        assert part.lower() in html.lower()
    for png in ("roc.png", "calibration.png", "dca.png"):
        assert (folder / png).stat().st_size > 1000
    assert study.has_table("model_predictions_pcr")

    mdir = tmp_path / "model"
    assert main(["--progress", "none", "model", "train", str(study.root), "--kind", "combined", "--out", str(mdir),
                 "--lasso-cv", "3"]) == 0
    assert main(["--progress", "none", "model", "train", str(study.root), "--kind", "combined", "--out", str(mdir)]) == 2
    capsys.readouterr()
    assert main(["--progress", "none", "model", "predict", str(mdir), "--study", str(study.root),
                 "--patients", "P000,P001", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert [p["patient_id"] for p in preds] == ["P000", "P001"]
    assert set(preds[0]["classes"]) == {"youden", "early", "late"} and 0 <= preds[0]["probability"] <= 1
    assert main(["--progress", "none", "model", "report", str(study.root)]) == 0


def test_predict_from_csv_reports_missing_features(study, tmp_path, capsys):
    mdir = tmp_path / "clin"
    assert main(["--progress", "none", "model", "train", str(study.root), "--kind", "clinical", "--out", str(mdir)]) == 0
    csv = tmp_path / "case.csv"
    pd.DataFrame([{"patient_id": "X1", "age": 50, "ki67": 40, "her2": 1, "er": 0, "pr": 0, "subtype": "TN"}]).to_csv(csv, index=False)
    # the default clinical variables include ct/cn, absent here -> the model was trained without them
    rc = main(["--progress", "none", "model", "predict", str(mdir), "--features", str(csv)])
    assert rc == 0, capsys.readouterr()
    pd.DataFrame([{"patient_id": "X2", "age": 50}]).to_csv(csv, index=False)
    assert main(["--progress", "none", "model", "predict", str(mdir), "--features", str(csv)]) == 2
    assert "ki67" in capsys.readouterr().err


def test_bad_target_and_missing_tables(tmp_path, capsys):
    rows = [{"patient_id": p, "timepoint": "pre", "kind": "image", "path": f"{p}.nii.gz", "modality": "MR",
             "role": "dce_early"} for p in ("P1", "P2")]
    store = StudyStore.create(tmp_path / "s", rows, {"P1": {"age": 40.0, "pcr": 1}, "P2": {"age": 50.0, "pcr": 0}})
    assert main(["--progress", "none", "model", "evaluate", str(store.root), "--models", "radiomics"]) == 2
    assert "no feature tables" in capsys.readouterr().err
