"""Feature reproducibility: ICC over readers (or over perturbations) and the ICC whitelist.

Inter-reader: the long ``radiomics`` table (one row per patient, timepoint, image, reader, method,
label) is pivoted into a (cases x readers x features) array per image and passed to
:mod:`NACResponseLib.readers.icc` in one pass.  The feature id is ``<image>__<pyradiomics feature name>``
(:func:`NACResponseLib.columns.make_feature_id`).

Single reader: when a study has one reader, the same ICC is computed over *perturbations* of each
case (Zwanenburg et al., Sci Rep 2019; generated and re-extracted in :mod:`.perturbation`); each
perturbation acts as a "reader".

Whitelist: store table ``icc_whitelist`` with ``feature, icc, ci_low, ci_high, form, kept, reason``
(the chosen form; optionally the lower CI bound must pass), written with provenance.  A wide-table
column (value or delta) is kept when its feature id is kept (:func:`kept_columns`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..columns import feature_id, make_feature_id, split_feature_id
from ..errors import InputError
from ..radiomics.tables import long_feature_columns
from ..study.store import StudyStore
from .icc import ICC_FORMS, icc_table, normalise_form, ratings_from_long

DEFAULT_FORM = "ICC2"
DEFAULT_THRESHOLD = 0.80
WHITELIST_COLUMNS = ["feature", "icc", "ci_low", "ci_high", "form", "kept", "reason"]


# ---- feature naming ------------------------------------------------------------------------------

def feature_parts(feature: str) -> dict[str, str]:
    """``dce_early__wavelet-LLH_glcm_Contrast`` -> image dce_early, filter wavelet, class glcm, name Contrast."""
    image, name = split_feature_id(feature)
    parts = name.split("_", 2)
    image_type = parts[0] if len(parts) == 3 else ""
    return {"image": image, "image_type": image_type, "filter": image_type.split("-")[0],
            "feature_class": parts[1] if len(parts) == 3 else "", "name": parts[-1]}


def kept_columns(columns: Iterable[str], whitelist) -> list[str]:
    """Columns of a wide table whose feature id the whitelist keeps."""
    kept = set(whitelist.loc[whitelist["kept"].astype(bool), "feature"])
    return [c for c in columns if feature_id(c) in kept]


# ---- ICC over readers ------------------------------------------------------------------------------

def radiomics_icc(frame, *, readers: Sequence[str] | None = None, methods: Sequence[str] | None = ("manual",),
                  timepoints: Sequence[str] | None = None, forms: Sequence[str] = ICC_FORMS, alpha: float = 0.05):
    """ICC of every ``<image>__<feature>`` over readers; targets are (patient, timepoint[, label]).

    Returns the long table of :func:`NACResponseLib.readers.icc.icc_table` plus ``image``,
    ``image_type``, ``filter`` and ``feature_class`` columns.
    """
    import pandas as pd

    missing = [c for c in ("patient_id", "timepoint", "image", "reader") if c not in frame.columns]
    if missing:
        raise InputError(f"radiomics table lacks id columns {missing}")
    sub = frame
    if methods is not None and "method" in sub.columns:
        sub = sub[sub["method"].isin(methods)]
    if readers:
        sub = sub[sub["reader"].isin(readers)]
    if timepoints:
        sub = sub[sub["timepoint"].isin(timepoints)]
    rater_ids = list(readers) if readers else sorted(sub["reader"].unique())
    if len(rater_ids) < 2:
        raise InputError(f"ICC over readers needs >= 2 readers; the radiomics table has {rater_ids} "
                         "(for a single reader use perturbation-based reproducibility: 'icc --perturb')")
    feats = long_feature_columns(sub)
    if not feats:
        raise InputError("radiomics table has no feature columns")
    sub = sub.assign(_target=sub["patient_id"].astype(str) + "/" + sub["timepoint"].astype(str)
                     + ("/" + sub["label"].astype(str) if "label" in sub.columns else ""))
    tables = []
    for image, part in sub.groupby("image", sort=True):
        x, _, _ = ratings_from_long(part, targets="_target", raters="reader", features=feats,
                                    rater_order=rater_ids)
        tables.append(icc_table(x, [make_feature_id(image, f) for f in feats], forms=forms, alpha=alpha))
    out = pd.concat(tables, ignore_index=True)
    parts = pd.DataFrame([feature_parts(f) for f in out["feature"]])
    return pd.concat([out, parts[["image", "image_type", "filter", "feature_class"]]], axis=1)


def icc_filter(icc_long, *, form: str = DEFAULT_FORM, threshold: float = DEFAULT_THRESHOLD,
               use_ci_lower: bool = False):
    """Whitelist: one row per feature with the chosen form's ICC/CI, ``kept`` and a reason."""
    form = normalise_form(form)
    if not 0 <= threshold <= 1:
        raise InputError(f"ICC threshold must lie in [0, 1], got {threshold}")
    sub = icc_long[icc_long["form"] == form].copy()
    if sub.empty:
        raise InputError(f"the ICC table has no {form} rows (forms: {sorted(icc_long['form'].unique())})")
    value = sub["ci_low"] if use_ci_lower else sub["icc"]
    what = "lower 95% CI" if use_ci_lower else "ICC"
    kept = value.notna() & (value >= threshold)
    reasons = []
    for v, r, ok in zip(value, sub["reason"], kept):
        if r:
            reasons.append(r)
        elif not np.isfinite(v):
            reasons.append(f"{what} undefined")
        else:
            reasons.append(f"{what} {v:.3f} {'>=' if ok else '<'} {threshold:.2f}")
    sub["kept"] = kept.to_numpy(dtype=bool)
    sub["reason"] = reasons
    return sub[WHITELIST_COLUMNS].reset_index(drop=True)


def write_whitelist(store: StudyStore, whitelist, icc_long=None, *, parameters: dict[str, Any] | None = None,
                    session=None, inputs: Sequence[str] = ()) -> dict[str, Any]:
    """Write ``icc_whitelist`` (and the full ``icc`` table when given) with provenance.

    ``session`` (a :class:`NACResponseLib.readers.sessions.ReaderSession`) adds its spec and status to the
    provenance, so later modelling can tell which readers and cases the filter rests on.
    """
    from dataclasses import asdict

    from ..provenance import collect

    extra: dict[str, Any] = {}
    if session is not None:
        extra["session"] = {"name": session.name, "id": session.session_id, "spec": asdict(session.spec),
                            "status": session.status()}
    input_paths = [store.table_path(t) for t in inputs if store.has_table(t)]
    prov = collect(step="icc", parameters=parameters or {}, inputs=input_paths, base=store.root, extra=extra)
    store.write_table("icc_whitelist", whitelist, prov)
    if icc_long is not None:
        store.write_table("icc", icc_long, prov)
    kept = int(whitelist["kept"].sum())
    return {"features": len(whitelist), "kept": kept,
            "fraction_kept": kept / len(whitelist) if len(whitelist) else 0.0}


def perturbation_icc(features, *, forms: Sequence[str] = ICC_FORMS):
    """ICC over perturbations (each perturbation plays a reader) from :func:`perturbation_features`."""
    readers = sorted(features["reader"].unique())
    return radiomics_icc(features, readers=readers, methods=None, forms=forms)


# ---- report figures -------------------------------------------------------------------------------

def icc_histograms(icc_long, path, *, form: str = DEFAULT_FORM, threshold: float = DEFAULT_THRESHOLD,
                   by: str = "feature_class"):
    """Histogram of ICC values per feature class (or ``image``/``filter``) on one PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..atomic import atomic_write_with

    sub = icc_long[(icc_long["form"] == normalise_form(form)) & icc_long["icc"].notna()]
    groups = sorted(sub[by].unique()) if not sub.empty else []
    ncol = min(4, max(1, len(groups)))
    nrow = max(1, int(np.ceil(len(groups) / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.4 * nrow), squeeze=False)
    bins = np.linspace(min(-0.2, float(sub["icc"].min()) if len(sub) else 0), 1, 31)
    for ax, g in zip(axes.ravel(), groups):
        vals = sub.loc[sub[by] == g, "icc"].clip(lower=bins[0])
        ax.hist(vals, bins=bins, color="tab:blue", alpha=0.8)
        ax.axvline(threshold, color="r", ls="--")
        kept = float((vals >= threshold).mean()) if len(vals) else 0.0
        ax.set_title(f"{g or '(none)'}: {kept:.0%} >= {threshold:.2f}", fontsize=9)
    for ax in axes.ravel()[len(groups):]:
        ax.axis("off")
    fig.suptitle(f"{normalise_form(form)} per {by.replace('_', ' ')}", fontsize=10)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


def icc_report(icc_long, whitelist, out_dir, *, form: str = DEFAULT_FORM, threshold: float = DEFAULT_THRESHOLD,
               use_ci_lower: bool = False, link_prefix: str = "") -> dict[str, Any]:
    """Histograms per feature class and per image, the fraction kept per group, and an HTML snippet."""
    import html as _html
    from pathlib import Path

    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = [icc_histograms(icc_long, out / "icc_by_feature_class.png", form=form, threshold=threshold),
               icc_histograms(icc_long, out / "icc_by_image.png", form=form, threshold=threshold, by="image")]
    parts = pd.DataFrame([feature_parts(f) for f in whitelist["feature"]])
    merged = pd.concat([whitelist.reset_index(drop=True), parts[["image", "feature_class"]]], axis=1)
    by_group = (merged.groupby(["image", "feature_class"])["kept"].agg(["sum", "count"]).reset_index()
                .rename(columns={"sum": "kept", "count": "features"}))
    by_group["fraction_kept"] = by_group["kept"] / by_group["features"]
    kept, total = int(whitelist["kept"].sum()), len(whitelist)
    undefined = int(whitelist["icc"].isna().sum())
    rule = f"{'lower 95% CI of ' if use_ci_lower else ''}{normalise_form(form)} >= {threshold:.2f}"
    body = [f"<p>Features kept ({_html.escape(rule)}): <b>{kept} of {total}</b> ({kept / max(total, 1):.0%}); "
            f"{undefined} with undefined ICC (constant or missing).</p>",
            by_group.to_html(index=False, float_format=lambda v: f"{v:.2f}", border=0)]
    body += [f"<img src='{_html.escape(link_prefix + p.name)}' alt='{_html.escape(p.stem)}'>" for p in figures]
    return {"kept": kept, "features": total, "by_group": by_group, "figures": figures, "html": "\n".join(body)}
