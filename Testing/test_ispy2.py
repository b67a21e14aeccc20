"""Real-data check on 982 I-SPY2 patients (BreastDCEDL metadata, CC BY 4.0): a clinical model of
pCR on HR, HER2 and tumour volume, trained on the ``test == 0`` rows and evaluated on ``test == 1``.
The numbers printed here are quoted in the README (Response models)."""

import json

import pandas as pd
import pytest

from NACResponseLib.modelling.calibration import calibration_slope_intercept, decile_table, hosmer_lemeshow
from NACResponseLib.modelling.dca import net_benefit
from NACResponseLib.modelling.delong import auc_ci
from NACResponseLib.modelling.evaluation import bootstrap_metrics, weighted_youden
from NACResponseLib.modelling.pipeline import ModelSpec, fit_model, selected_features


@pytest.fixture(scope="module")
def ispy2(shared_data):
    path = shared_data / "ispy2" / "clinical_ispy2_visit1.csv"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    d = pd.read_csv(path)
    # tumour volume: mask voxel count x voxel volume (true spacing from the CSV, not the NIfTI header)
    d["volume_ml"] = d["mask_count"] * d["xy_spacing"] ** 2 * d["slice_thick"] / 1000.0
    return d


def test_subtype_pcr_rates_are_the_known_ones(ispy2):
    d = ispy2
    rate = d.groupby(["HR", "HER2pos"])["pCR"].mean()
    assert len(d) == 982
    assert rate[(0, 1)] == pytest.approx(0.62, abs=0.03)  # HR-/HER2+
    assert rate[(1, 0)] == pytest.approx(0.17, abs=0.03)  # HR+/HER2-
    assert rate[(0, 0)] > rate[(1, 0)]  # triple negative responds better than HR+/HER2-


def test_clinical_model_on_held_out_rows(ispy2):
    d = ispy2.dropna(subset=["volume_ml", "test"])
    cols = ["HR", "HER2pos", "volume_ml"]
    train, test = d[d["test"] == 0], d[d["test"] == 1]
    pipe = fit_model(ModelSpec("clinical"), train[cols], train["pCR"].to_numpy())
    p_train = pipe.predict_proba(train[cols])[:, 1]
    p = pipe.predict_proba(test[cols])[:, 1]
    y = test["pCR"].to_numpy()
    op = weighted_youden(train["pCR"].to_numpy(), p_train, 0.5)  # operating point fixed on training rows
    boot = bootstrap_metrics(y, p, op["threshold"], n_boot=2000, seed=2024)
    dl = auc_ci(y, p)
    cal = calibration_slope_intercept(y, p)
    dca = net_benefit(y, p, [0.1, 0.2, 0.3, 0.4, 0.5])
    ors = pipe.named_steps["model"].odds_ratios_
    summary = {"n_train": len(train), "n_test": len(test), "events_test": int(y.sum()),
               "selected": selected_features(pipe), "odds_ratios": ors.round(4).to_dict(orient="records"),
               "auc": boot["auc"], "auc_delong": dl, "threshold": op["threshold"],
               "sensitivity": boot["sensitivity"], "specificity": boot["specificity"], "calibration": cal,
               "hosmer_lemeshow": hosmer_lemeshow(y, p), "youden_j": op["j"],
               "deciles": decile_table(y, p, 5).round(3).to_dict(orient="records"),
               "dca": dca.round(4).to_dict(orient="records")}
    print("ISPY2_CLINICAL_MODEL", json.dumps(summary, default=float))
    assert len(test) == 98
    assert {"HR", "HER2pos"} <= set(selected_features(pipe))
    # HR+ lowers and HER2+ raises the odds of pCR (well established)
    orv = dict(zip(ors["variable"], ors["odds_ratio"]))
    assert orv["HR"] < 1 < orv["HER2pos"]
    assert 0.6 < boot["auc"]["estimate"] < 0.85 and boot["auc"]["ci_low"] > 0.5
    assert boot["auc"]["estimate"] == pytest.approx(dl["auc"])
    assert 0.3 < cal["slope"] < 2.5
    # at a 20% threshold the model helps more than treating everybody
    row = dca[dca["threshold"] == 0.2].iloc[0]
    assert row["net_benefit"] >= row["treat_all"] - 0.02
