"""Demo stage: train a small SegResNet on part of the cohort, segment the rest, FTV and RECIST."""

from __future__ import annotations

import html
import time

import numpy as np
import SimpleITK as sitk

TITLE = "Tumour segmentation: MONAI training and inference, FTV, RECIST"


def run(ctx) -> dict:
    from ...segmentation.bundle import read_metadata
    from ...segmentation.cohort import ftv_study, measure_study, segment_study, train_from_study
    from ...segmentation.inference import InferenceConfig
    from ...segmentation.training import TrainingConfig, dice

    store = ctx.study
    patients = sorted(store.cohort.patients)
    n_train = 3 if ctx.quick else max(3, min(8, int(0.6 * len(patients))))
    train, rest = patients[:n_train], patients[n_train:]
    test = rest[: (2 if ctx.quick else 6)]
    model_dir = ctx.out_dir / "seg_model"
    threads = 1  # small tensors: one torch thread is as fast and never fights other processes for cores
    start = time.perf_counter()
    if not (model_dir / "configs" / "metadata.json").exists():  # a finished model is reused
        config = TrainingConfig(max_epochs=4 if ctx.quick else 30, val_every=2, patience=4, seed=ctx.seed,
                                max_seconds=30 if ctx.quick else 75)
        train_from_study(store, model_dir, reader="R1", method="manual", config=config, patients=train,
                         threads=threads)
    metrics = read_metadata(model_dir)["nacresponse"]["metrics"]
    train_s = time.perf_counter() - start
    predictions = segment_study(store, model_dir, patients=test, config=InferenceConfig(tta=False),
                                threads=threads).outputs["table"]
    cohort = store.cohort
    rows = []
    for _, r in predictions.iterrows():
        tp = cohort[r["patient_id"]].timepoints[r["timepoint"]]
        gt = sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(tp.segmentations_by("GT")[0].path)))) > 0
        pred = (sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(r["path"])))) > 0
                if isinstance(r["path"], str) else np.zeros_like(gt))
        rows.append((r["patient_id"], r["timepoint"], r["status"], float(gt.sum()) * 2e-3, dice(pred, gt)))
    measurable = [d for *_, vol, d in rows if vol >= 1.0]
    infer_s = time.perf_counter() - start - train_s
    ftv = ftv_study(store, roi_reader="R1", patients=test + train[:2]).outputs["table"]
    measures = measure_study(store, readers=["GT", "R1", "monai"], patients=test + train[:2]).outputs["table"]
    recist = measures[measures["reader"] == "GT"]["recist"].value_counts().to_dict()
    table = "".join(f"<tr><td>{html.escape(p)}</td><td>{t}</td><td>{s}</td><td>{v:.2f}</td><td>{d:.3f}</td></tr>"
                    for p, t, s, v, d in rows)
    ctx.add_section(TITLE, (
        f"<p>SegResNet trained on reader R1's masks of {len(train)} patients ({metrics['n_train_cases']} "
        f"training / {metrics['n_val_cases']} validation examinations), {metrics['epochs_run']} epochs, best "
        f"validation Dice {metrics['val_dice_mean']:.3f}; training {train_s:.0f} s, inference {infer_s:.0f} s. Held-out patients segmented with "
        f"sliding-window inference; Dice against the synthetic truth (mean over cases with >= 1 ml tumour: "
        f"<b>{np.mean(measurable) if measurable else float('nan'):.3f}</b>).</p>"
        f"<table><tr><th>patient</th><th>timepoint</th><th>status</th><th>true ml</th><th>Dice</th></tr>{table}"
        f"</table><p>FTV (PE &ge; 70 %, box = R1 mask + 10 mm): {int((ftv['status'] == 'done').sum())} cases, "
        f"median {ftv['ftv_cm3'].median():.2f} cm3. RECIST categories from the ground-truth masks: "
        f"{html.escape(str(recist))}.</p>"))
    return {"train_patients": len(train), "test_cases": len(rows), "val_dice": metrics["val_dice_mean"],
            "held_out_dice": float(np.mean(measurable)) if measurable else None,
            "ftv_cases": int((ftv["status"] == "done").sum()), "recist_gt": recist}
