"""Demo stage: microcalcifications on the synthetic mammograms, pre vs post NAC, RESMIN flags.

Detects MCs on every mammogram of the study, clusters them, compares pre with post per patient
side (RESMIN categories), takes the tumour RECIST category from the segmentation measurements
(segmentation.measurements) and flags discordant cases.  When the generator's ``ground_truth.json`` is present
the detections are also scored against the true MC positions (FROC sensitivity, extent error).
"""

from __future__ import annotations

import html
import json
import os

import numpy as np

from ...errors import InputError

TITLE = "Microcalcifications: extent before and after NAC (RESMIN)"


def run(ctx) -> dict:
    from ...mc.cohort import compare_study, detect_study, extent_study, mammograms, resmin_panels
    from ...mc.longitudinal import RESMIN_RULE
    from ...mc.overlays import render_overlay

    store = ctx.study
    if store is None:
        raise InputError("no study: the import stage (s10) must run first")
    items = mammograms(store)
    if not items:
        ctx.add_section(TITLE, "<p>The study has no mammograms.</p>")
        return {"mammograms": 0}
    det = detect_study(store, progress_mode="none")
    ext = extent_study(store)
    cmp = compare_study(store)
    resmin = cmp.outputs["resmin"]
    result = {"mammograms": len(items), "failed": len(det.failed), "clusters": ext.outputs["clusters"],
              "patient_sides": int(len(resmin)), "resmin_flagged": int(resmin["resmin_flag"].sum()) if len(resmin) else 0}
    result.update(_validate(ctx, store))

    out = store.reports_dir / "mc"
    mcs, clusters = store.read_table("mc_mcs"), store.read_table("mc_clusters")
    figs = []
    for row in resmin.itertuples():
        panels = resmin_panels(store, row, mcs, clusters)
        if len(panels) == 2:
            flag = " - RESMIN" if row.resmin_flag else ""
            png = render_overlay(out / f"{row.patient_id}_{panels[0]['key']}.png", panels, crop=True,
                                 suptitle=f"{row.patient_id} {panels[0]['key']}: MC {row.mc_category}, "
                                 f"tumour {row.tumour_recist}{flag}")
            figs.append((row, png))

    rel = os.path.relpath(out, ctx.out_dir).replace(os.sep, "/")
    parts = [f"<p>{len(items)} mammograms; classical detector (multi-scale DoG in mm, noise-adaptive threshold), "
             f"clusters of >= 3 MCs within 1 cm. Response rule: {html.escape(RESMIN_RULE)}. RESMIN flag: tumour "
             "RECIST PR/CR (from the segmentation measurements) while the MC extent is SD/PD.</p>"]
    if "sensitivity_at_1fp" in result:
        parts.append(f"<p>Against the generator's truth: sensitivity {result['sensitivity_at_1fp']:.2f} at 1 and "
                     f"{result['sensitivity_at_2fp']:.2f} at 2 false positives per image; median absolute extent "
                     f"error {result['extent_error_median_mm']:.1f} mm over {result['clusters_scored']} true clusters; "
                     f"RESMIN flag agrees with the truth for {result['resmin_agree']} of {result['resmin_scored']} "
                     "patients.</p>")
    if len(resmin):
        cols = ["patient_id", "laterality", "pre_extent_mm", "post_extent_mm", "change_pct", "mc_category",
                "tumour_recist", "resmin_flag", "statement"]
        parts.append(resmin[cols].round(1).to_html(index=False, escape=True, border=0))
    for row, png in figs:
        parts.append(f"<figure><img src='{rel}/{png.name}' width='760'><figcaption>{html.escape(row.statement)}"
                     "</figcaption></figure>")
    ctx.add_section(TITLE, "\n".join(parts))
    return result


def _validate(ctx, store) -> dict:
    """Score detections and extents against ground_truth.json when the source folder has one."""
    from ...mc.evaluation import extent_errors, froc, sensitivity_at

    src = getattr(ctx, "source_dir", None)
    path = src / "ground_truth.json" if src else None
    if path is None or not path.is_file():
        return {}
    truth = json.loads(path.read_text())
    det = store.read_table("mc_detections")
    clusters = store.read_table("mc_clusters")
    resmin = store.read_table("mc_resmin").set_index("patient_id")
    images, errors, agree, scored = [], [], 0, 0
    for pid, p in truth.get("patients", {}).items():
        mc = p.get("mc")
        if not mc:
            continue
        for tp, by_image in mc.get("mcs", {}).items():
            for key, mcs in by_image.items():
                sel = det[(det["patient_id"] == pid) & (det["timepoint"] == tp) & (det["image"] == key)]
                images.append((sel, mcs))
                if mcs:
                    csel = clusters[(clusters["patient_id"] == pid) & (clusters["timepoint"] == tp)
                                    & (clusters["image"] == key)]
                    errors += extent_errors(csel, mcs)["error_mm"].tolist()
        if pid in resmin.index:
            scored += 1
            agree += int(bool(resmin.loc[pid, "resmin_flag"]) == bool(mc.get("resmin")))
    if not images:
        return {}
    curve = froc(images)
    err = np.abs(np.asarray(errors, dtype=float))
    return {"sensitivity_at_1fp": round(sensitivity_at(curve, 1.0), 3),
            "sensitivity_at_2fp": round(sensitivity_at(curve, 2.0), 3),
            "extent_error_median_mm": round(float(np.nanmedian(err)), 2) if err.size else float("nan"),
            "clusters_scored": int(np.isfinite(err).sum()), "resmin_agree": agree, "resmin_scored": scored}
