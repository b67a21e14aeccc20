"""Demo stage: the per-case report of one patient (HTML page with embedded figures, and its PDF).

The patient is the first with the most parts to show: compared mammograms and a stored DLR
prediction when the earlier stages made them.
"""

from __future__ import annotations

import html
import os

TITLE = "Case report for the tumour board (one patient)"


def _patient(store) -> str:
    ids = sorted(store.cohort.patients)
    score = dict.fromkeys(ids, 0)
    for table, weight in (("mc_resmin", 2), ("dlr_predictions", 1)):
        if store.has_table(table):
            for pid in set(store.read_table(table)["patient_id"]) & set(ids):
                score[pid] += weight
    return max(ids, key=lambda p: (score[p], -ids.index(p)))


def run(ctx) -> dict:
    from ...reporting.case import write_case_report

    store = ctx.study
    if store is None:
        raise RuntimeError("no study (the import stage did not run)")
    pid = _patient(store)
    res = write_case_report(store, pid, pdf=True)
    case = res["case"]
    made = [key for key in ("images", "measurements", "models", "gradcam", "mammograms") if "missing" not in case[key]]
    rel = os.path.relpath(res["html"], ctx.out_dir).replace(os.sep, "/")
    ctx.add_section(TITLE, (
        f"<p>Patient {html.escape(pid)}: <a href='{html.escape(rel)}'>{html.escape(rel)}</a> (self-contained HTML) "
        f"and <code>{html.escape(str(res['pdf']))}</code>. Sections with content: {html.escape(', '.join(made))}"
        + (f"; could not include: {html.escape('; '.join(res['problems']))}" if res["problems"] else "") + ".</p>"))
    return {"patient": pid, "html": str(res["html"]), "pdf": str(res["pdf"]), "sections": made,
            "problems": len(res["problems"])}
