"""Demo stage: DLR-2 and DLR-4 on the synthetic ultrasound, their evaluation against Clinical-2 /
Clinical-4 and the stepwise DLRP table.

Demo-sized on purpose (a small ResNet-18-layout encoder, 48-pixel crops, few epochs, random
initialisation because no ImageNet weights are shipped): it shows the pipeline end to end in
minutes on two cores; ``nacresponse model dlr train`` has the full-size defaults.
"""

from __future__ import annotations

import html
import math

TITLE = "Deep-learning radiomics on ultrasound (DLR-2, DLR-4, the DLRP pathway)"


NOT_APPLICABLE = "\u2013"  # shown for a value that does not apply (None, NaN)


def _table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return NOT_APPLICABLE
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _dlrp_rows(table: list[dict]) -> list[dict]:
    """The DLRP flag table's rows for the summary: a count that does not apply to a row (pandas
    keeps ``flag_table``'s None as NaN, which ``strict_json`` writes as the string "NaN") becomes
    None (JSON null, "\u2013" in the HTML); the other counts, floats only because their column held
    a NaN, become ints again."""
    def value(v):
        if isinstance(v, float):
            if math.isnan(v):
                return None
            if v.is_integer():
                return int(v)
        return v

    return [{k: value(v) for k, v in row.items()} for row in table]


def _train_replacing_stale(store, out, aside_dir, **kwargs) -> dict:
    """Train a demo bundle; one that an older version of the demo left with other inputs or
    parameters is moved out of the study to ``aside_dir/<name>-<time>`` (never overwritten or
    deleted; outside ``models/``, so no report lists it), so ``make demo`` reruns over an old
    ``demo_output/`` after an update."""
    import logging
    import time

    from ...deep.dlr_cohort import train_dlr_study
    from ...errors import ExistingResultError

    try:
        return train_dlr_study(store, out, **kwargs)
    except ExistingResultError:
        aside_dir.mkdir(parents=True, exist_ok=True)
        aside = aside_dir / f"{out.name}-{time.strftime('%Y%m%dT%H%M%S')}"
        out.rename(aside)
        logging.getLogger(__name__).warning("%s was made by an older demo; moved to %s", out, aside.name)
        return train_dlr_study(store, out, **kwargs)


def run(ctx) -> dict:
    from dataclasses import replace

    from ...deep.dlr import DLRNetConfig, TrainConfig
    from ...deep.dlr_cohort import DLRInputSettings, evaluate_dlr_study, predict_dlr_study
    from ...deep.engine import configure_threads

    store = ctx.study
    if store is None:
        raise RuntimeError("no study (the import stage did not run)")
    # One thread: a network this small gains little from two, and spinning threads on a busy machine
    # cost many times the work (measured: 6 CPU-s for a training with one thread, > 100 with two).
    configure_threads(1)
    settings = DLRInputSettings(size=48)
    net = DLRNetConfig(widths=(8, 16, 32, 64), hidden=16, dropout=0.2, max_pool=False)  # Grad-CAM on 12x12 (layer2)
    # Batches of 4: a training fold of 10-30 patients is then 3-8 optimiser steps per epoch, not 1-2;
    # a randomly initialised encoder needs some 50 steps before it finds the tumour's size.
    train = TrainConfig(epochs=12 if ctx.quick else 20, patience=5 if ctx.quick else 6, batch_size=4, seed=ctx.seed)
    folds = 3 if ctx.quick else 5
    bundles, summary = {}, {}
    aside = ctx.out_dir / "superseded"  # bundles an older demo left behind
    for step in ("c2", "c4"):
        res = _train_replacing_stale(store, store.root / "models" / f"demo_dlr_{step}", aside, step=step, settings=settings,
                              net_config=net, train_config=train, n_splits=folds)
        bundles[step] = res["path"]
        summary[step] = {"bundle": res["path"], "reused": res["reused"], "failures": len(res["failures"]),
                         "cv_auc": round(res["training"]["cv"]["auc"]["estimate"], 3)}
    ev = evaluate_dlr_study(store, bundles, n_boot=200 if ctx.quick else 2000, n_splits=folds, seed=ctx.seed)
    if not ctx.quick:  # the MRI 2.5D path: DLR-2 on DCE early, ADC and T2w (the cohort's MRI has no c4)
        mr = _train_replacing_stale(store, store.root / "models" / "demo_dlr_c2_mr", aside, step="c2",
                             settings=DLRInputSettings.for_modality("MR", size=48), net_config=net,
                             train_config=replace(train, modality="MR"), n_splits=folds)
        summary["c2_mr"] = {"bundle": mr["path"], "reused": mr["reused"], "failures": len(mr["failures"]),
                            "cv_auc": round(mr["training"]["cv"]["auc"]["estimate"], 3)}
    first = ev["bundles"]["c2"]["y"]
    pid = sorted(first)[0]
    pred = predict_dlr_study(store, bundles["c2"], [pid])[0]
    rows = []
    for name, m in ev["models"].items():
        a = m["metrics"]
        rows.append({"model": name, "n": m["n"], "AUC": a["auc"]["estimate"],
                     "95% CI": f"{a['auc']['ci_low']:.2f}-{a['auc']['ci_high']:.2f}", "w": m["youden_weight"],
                     "Se": a["sensitivity"]["estimate"], "Sp": a["specificity"]["estimate"],
                     "calibration slope": m["calibration"]["slope"]})
    dlrp = _dlrp_rows(ev["dlrp"]["table"])
    delong = [{"models": f"{d['model_1']} vs {d['model_2']}", "diff": d["diff"], "p": d["p"]} for d in ev["delong"]]
    body = [
        "<p>Dual-input network (shared ResNet-18-layout encoder, widths 8-64, RANDOM initialisation: no ImageNet "
        f"weights are shipped) on 48-pixel crops of the synthetic B-mode images, pre + c2 (DLR-2, w = 0.8) and "
        f"pre + c4 (DLR-4, w = 0.2); {folds}-fold cross-validated scores; target Miller-Payne G4-5. Clinical-k: "
        "backward stepwise logistic regression on % tumour volume reduction, ER, PR, Ki-67 and HER2.</p>",
        _table(rows, ["model", "n", "AUC", "95% CI", "w", "Se", "Sp", "calibration slope"]),
        "<p>DeLong (paired):</p>", _table(delong, ["models", "diff", "p"]),
        f"<p>DLRP on {ev['dlrp']['patients']} patients ({ev['dlrp']['responders']} responders): DLR-2 "
        "non-responders are referred, the others continue and DLR-4 decides.</p>",
        _table(dlrp, ["step", "model", "evaluated", "flagged", "flagged_non_responders", "flagged_responders",
                      "responders", "non_responders"]),
        f"<p>Patient {html.escape(pid)} with DLR-2: p = {pred.get('probability', math.nan):.2f}, "
        + ", ".join(f"{html.escape(k)}: {html.escape(v['label'])}" for k, v in pred.get("classes", {}).items())
        + "; Grad-CAM maps " + ", ".join(f"<code>{html.escape(p)}</code>" for p in pred.get("gradcam", {}).values())
        + ".</p>"]
    if "c2_mr" in summary:
        a = summary["c2_mr"]
        body.append("<p>MRI, 2.5D (largest tumour slice +-1; DCE early, ADC, T2w), DLR-2-MR: cross-validated AUC "
                    f"{a['cv_auc']:.3f} (bundle <code>{html.escape(a['bundle'])}</code>).</p>")
    ctx.add_section(TITLE, "\n".join(body))
    return {"models": summary, "aucs": {r["model"]: round(r["AUC"], 3) for r in rows},
            "dlrp": dlrp, "evaluation": ev["path"]}
