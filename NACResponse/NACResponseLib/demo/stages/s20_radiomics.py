"""Demo stage: pyradiomics features for every reader and timepoint of the synthetic study.

Uses the small ``fast`` parameter set (Original image, all seven classes, 107 features) on the
DCE early phase and T2w (DCE early only in quick mode) so the whole demo stays within minutes on
two cores; the full breast protocol is one ``--params`` away on the command line.
"""

from __future__ import annotations

import html

TITLE = "Radiomics (pyradiomics, per-ROI tasks on the cohort runner)"


def run(ctx) -> dict:
    import numpy as np

    from ...radiomics import extract_cohort
    from ...study.model import timepoint_order

    store = ctx.study
    if store is None:
        raise RuntimeError("no study: the import stage (s10) did not run")
    images = ["dce_early"] if ctx.quick else ["dce_early", "t2w"]
    result = extract_cohort(store, "fast", jobs=ctx.jobs, images=images)
    s = result.summary
    long, wide = result.long, result.wide

    # A sanity view a reader can check by eye: tumour volume change by pathological response.
    col = "delta_rel__pre_post__dce_early__original_shape_VoxelVolume"
    rows = []
    if col in wide.columns:
        pcr = {p.patient_id: p.outcomes.get("pcr") for p in store.cohort}
        for reader in sorted(wide.reader.unique()):
            sub = wide[wide.reader == reader]
            for label, flag in (("pCR", 1), ("no pCR", 0)):
                vals = sub[[pcr.get(p) == flag for p in sub.patient_id]][col].dropna()
                rows.append((reader, label, len(vals), float(np.median(vals)) if len(vals) else float("nan")))
    table = "".join(f"<tr><td>{html.escape(r)}</td><td>{g}</td><td>{n}</td><td>{m:+.2f}</td></tr>"
                    for r, g, n, m in rows)
    failures = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in list(s.failures.items())[:10])
    ctx.add_section(TITLE, (
        f"<p>{s.total} ROIs (images {', '.join(images)}; readers {', '.join(sorted(long.reader.unique()))}; "
        f"timepoints {', '.join(sorted(long.timepoint.unique(), key=timepoint_order))}): {s.computed} computed, {s.reused} reused from an "
        f"earlier run, {s.failed} failed, in {s.seconds:.1f} s on {s.workers} worker(s). "
        f"{long.shape[1] - 6} features per ROI. Tables: <code>radiomics</code> ({long.shape[0]} x {long.shape[1]}), "
        f"<code>radiomics_wide</code> ({wide.shape[0]} x {wide.shape[1]}), <code>radiomics_failures</code>.</p>"
        + (f"<p>Median relative change of tumour volume (DCE early, pre to post):</p><table><tr><th>reader</th>"
           f"<th>group</th><th>n</th><th>median (post-pre)/pre</th></tr>{table}</table>" if rows else "")
        + (f"<p>Failed ROIs (first 10):</p><ul>{failures}</ul>" if failures else "")))
    return {"rois": s.total, "computed": s.computed, "reused": s.reused, "failed": s.failed,
            "features_per_roi": long.shape[1] - 6, "wide_columns": wide.shape[1], "seconds": round(s.seconds, 1)}
