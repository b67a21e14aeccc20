"""Demo stage: a 2-reader session on the synthetic cohort, spatial agreement and the ICC filter.

The synthetic readers R1 and R2 delineated every case before the session existed, so the session
adopts their segmentations (``adopt_existing``); agreement is computed on the session's results
(plus the ground truth as an extra reference), and the ICC(2,1) >= 0.80 filter on the radiomics
table written by the radiomics stage (s20).
"""

from __future__ import annotations

import html
import os

from ...errors import InputError
from ...readers.sessions import ReaderSession, create_session, list_sessions

TITLE = "Reader session, agreement and ICC feature filter"
SESSION = "demo_R1_R2"


def run(ctx) -> dict:
    from ...readers.cohort import run_agreement, run_icc
    from ...readers.reproducibility import DEFAULT_FORM, DEFAULT_THRESHOLD

    store = ctx.study
    if store is None:
        raise InputError("no study: the import stage (s10) must run first")
    if SESSION in list_sessions(store):  # finished work is reused
        session = ReaderSession(store, SESSION)
    else:
        session = create_session(store, SESSION, ["R1", "R2"], seed=ctx.seed, adopt_existing=True)
    status = session.status()
    result: dict = {"session": SESSION, "cases": len(session.spec.cases), "complete": session.complete}

    agree = run_agreement(store, session=SESSION, extra=[("GT", "reference")], progress_mode="none")
    summary = agree.outputs["summary"].set_index(["reader_a", "reader_b"])
    if ("R1", "R2") in summary.index:
        r = summary.loc[("R1", "R2")]
        result.update({"dice_median_R1_R2": round(float(r["dice_median"]), 3),
                       "hd95_median_mm_R1_R2": round(float(r["hd95_mm_median"]), 2),
                       "volume_bias_ml_R1_R2": round(float(r.get("volume_bias_ml", float("nan"))), 3)})
    result["agreement_failures"] = len(agree.failed)
    prefix = os.path.relpath(store.reports_dir / "agreement", ctx.out_dir).replace(os.sep, "/") + "/"
    parts = [f"<p>Session <code>{SESSION}</code>: readers R1 and R2 (seeded random case orders, seed {ctx.seed}), "
             f"{len(session.spec.cases)} cases; status "
             + ", ".join(f"{html.escape(k)} {v['done']}/{v['total']} done" for k, v in status.items())
             + ". The synthetic readers' delineations were adopted into the session; GT is the simulated truth."
             "</p><h3>Spatial agreement</h3>",
             agree.outputs["html"].replace("<img src='", f"<img src='{prefix}")]

    if store.has_table("radiomics"):
        icc = run_icc(store, session=SESSION, form=DEFAULT_FORM, threshold=DEFAULT_THRESHOLD, progress_mode="none")
        result.update({"features": icc.outputs["features"], "features_kept": icc.outputs["kept"],
                       "fraction_kept": round(icc.outputs["fraction_kept"], 3)})
        prefix = os.path.relpath(store.reports_dir / "icc", ctx.out_dir).replace(os.sep, "/") + "/"
        parts += ["<h3>Feature reproducibility: ICC(2,1) over R1 and R2</h3>",
                  icc.outputs["html"].replace("<img src='", f"<img src='{prefix}"),
                  "<p>The whitelist is the study table <code>icc_whitelist</code>; modelling keeps only "
                  "features (and their deltas) marked kept.</p>"]
    else:
        result["icc"] = "not computed: the radiomics table is missing (radiomics stage s20 did not run)"
        parts.append(f"<p><b>ICC filter not computed</b>: {html.escape(result['icc'])}.</p>")
    ctx.add_section(TITLE, "\n".join(parts))
    return result
