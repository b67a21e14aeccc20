"""Intraclass correlation for thousands of features at once (Shrout & Fleiss 1979; McGraw & Wong 1996).

Reader-agreement filtering computes one ICC per radiomics feature; looping a per-feature ANOVA
(pingouin) over 10,000 features takes minutes, so the two-way ANOVA mean squares are computed here
for every feature in one numpy pass over a ``(cases, readers, features)`` array.

Forms (names as in Shrout & Fleiss; pingouin's labels in brackets):

* ``ICC1``  [ICC(1,1)]  one-way random effects, single rater
* ``ICC2``  [ICC(A,1)]  two-way random effects, absolute agreement, single rater (McGraw-Wong A,1)
* ``ICC3``  [ICC(C,1)]  two-way mixed effects, consistency, single rater
* ``ICC1k``, ``ICC2k``, ``ICC3k``  the same for the mean of k raters

F statistics, p-values and (1 - alpha) confidence intervals follow the formulas of Shrout & Fleiss /
McGraw & Wong exactly as pingouin implements them (tests compare to ``pingouin.intraclass_corr``).
Cases with a missing value for any reader are dropped per feature (listwise deletion, as pingouin's
``nan_policy='omit'``).  A feature that is constant, missing, or has fewer than two complete cases
gets NaN with a reason instead of an exception.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError

ICC_FORMS = ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k")
PINGOUIN_LABELS = {"ICC1": "ICC(1,1)", "ICC2": "ICC(A,1)", "ICC3": "ICC(C,1)",
                   "ICC1k": "ICC(1,k)", "ICC2k": "ICC(A,k)", "ICC3k": "ICC(C,k)"}
_ALIASES = {**{v.upper(): k for k, v in PINGOUIN_LABELS.items()},
            **{f.upper(): f for f in ICC_FORMS},
            "ICC(1,1)": "ICC1", "ICC(2,1)": "ICC2", "ICC(3,1)": "ICC3",
            "ICC(1,K)": "ICC1k", "ICC(2,K)": "ICC2k", "ICC(3,K)": "ICC3k"}


def normalise_form(form: str) -> str:
    """Accept ``ICC2``, ``ICC(2,1)``, ``ICC(A,1)`` ... and return the canonical name (``ICC2``)."""
    key = str(form).strip().upper().replace(" ", "")
    if key not in _ALIASES:
        raise InputError(f"unknown ICC form {form!r}; use one of {ICC_FORMS} (or ICC(2,1), ICC(A,1), ...)")
    return _ALIASES[key]


def _as_3d(ratings) -> np.ndarray:
    x = np.asarray(ratings, dtype=float)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise InputError(f"ratings must be (cases, readers) or (cases, readers, features); got shape {x.shape}")
    if x.shape[1] < 2:
        raise InputError(f"ICC needs at least 2 readers (ratings have {x.shape[1]})")
    return x


def icc_arrays(ratings, *, alpha: float = 0.05) -> dict[str, object]:
    """All six ICC forms for every feature of a ``(n_cases, k_readers[, n_features])`` array.

    Returns a dict with ``n`` (complete cases per feature), ``k``, the mean squares ``msb, msw, msj,
    mse``, ``reason`` (str array, "" where defined) and, for each form in :data:`ICC_FORMS`, a dict of
    arrays ``icc, F, df1, df2, pval, ci_low, ci_high``.
    """
    from scipy.stats import f as fdist

    x = _as_3d(ratings)
    _, k, n_feat = x.shape
    complete = np.isfinite(x).all(axis=1)  # (n, F)
    n = complete.sum(axis=0).astype(float)  # complete cases per feature
    all_complete = bool(complete.all())
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # Centre each feature on a complete-case value first: removes large offsets (precision).
        first = np.argmax(complete, axis=0)
        shift = np.where(n > 0, x[first, 0, np.arange(n_feat)], 0.0)
        if all_complete:  # fast path: no masking needed
            xz = x - shift
            w = None
        else:
            xz = np.where(complete[:, None, :], x - shift, 0.0)
            w = complete.astype(float)
        row_mean = xz.sum(axis=1) / k  # (n, F)
        col_mean = xz.sum(axis=0) / n  # (k, F)
        grand = xz.sum(axis=(0, 1)) / (n * k)
        dev = row_mean - grand
        if w is not None:
            dev *= w
        ss_rows = k * np.einsum("if,if->f", dev, dev)
        ss_cols = n * ((col_mean - grand) ** 2).sum(axis=0)
        resid = xz - row_mean[:, None, :]
        resid -= col_mean[None, :, :] - grand
        if w is not None:
            resid *= w[:, None, :]
        ss_err = np.einsum("ijf,ijf->f", resid, resid)
        scale = np.abs(xz).max(axis=(0, 1)) if xz.size else np.zeros(n_feat)

        df1 = n - 1
        dfj = k - 1.0
        df_err = (n - 1) * (k - 1)
        df_within = n * (k - 1)
        msb = ss_rows / df1
        msj = ss_cols / dfj
        mse = ss_err / df_err
        msw = (ss_cols + ss_err) / df_within

        reason = np.full(n_feat, "", dtype=object)
        ss_total = ss_rows + ss_cols + ss_err
        constant = (n >= 2) & (ss_total <= (1e-12 * scale) ** 2 * n * k)
        reason[constant] = "constant: no variance across cases and readers"
        reason[n < 2] = [f"too few complete cases (n={int(v)}; need >= 2)" for v in n[n < 2]]
        reason[n == 0] = "missing: no case has a value from every reader"
        bad = reason != ""
        msb, msj, mse, msw = (np.where(bad, np.nan, m) for m in (msb, msj, mse, msw))

        icc1 = (msb - msw) / (msb + (k - 1) * msw)
        icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
        icc3 = (msb - mse) / (msb + (k - 1) * mse)
        icc1k = (msb - msw) / msb
        icc2k = (msb - mse) / (msb + (msj - mse) / n)
        icc3k = (msb - mse) / msb

        f1 = msb / msw
        f3 = msb / mse
        p1 = fdist.sf(f1, df1, df_within)
        p3 = fdist.sf(f3, df1, df_err)
        q = 1 - alpha / 2
        f1l = f1 / fdist.ppf(q, df1, df_within)
        f1u = f1 * fdist.ppf(q, df_within, df1)
        l1 = (f1l - 1) / (f1l + (k - 1))
        u1 = (f1u - 1) / (f1u + (k - 1))
        f3l = f3 / fdist.ppf(q, df1, df_err)
        f3u = f3 * fdist.ppf(q, df_err, df1)
        l3 = (f3l - 1) / (f3l + (k - 1))
        u3 = (f3u - 1) / (f3u + (k - 1))
        fj = msj / mse
        vn = df_err * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        vd = df1 * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        v = vn / vd
        f2u = fdist.ppf(q, df1, v)
        f2l = fdist.ppf(q, v, df1)
        denom = k * msj + (k * n - k - n) * mse
        l2 = n * (msb - f2u * mse) / (f2u * denom + n * msb)
        u2 = n * (f2l * msb - mse) / (denom + n * f2l * msb)
        ci = {
            "ICC1": (l1, u1), "ICC2": (l2, u2), "ICC3": (l3, u3),
            "ICC1k": (1 - 1 / f1l, 1 - 1 / f1u),
            "ICC2k": (l2 * k / (1 + l2 * (k - 1)), u2 * k / (1 + u2 * (k - 1))),
            "ICC3k": (1 - 1 / f3l, 1 - 1 / f3u),
        }
        # Zero error variance with real between-case variance: perfect agreement, F = inf.
        perfect_w = (msw == 0) & (msb > 0)
        perfect_e = (mse == 0) & (msb > 0)
        for form, perfect in (("ICC1", perfect_w), ("ICC1k", perfect_w), ("ICC3", perfect_e), ("ICC3k", perfect_e),
                              ("ICC2", perfect_w), ("ICC2k", perfect_w)):
            lo, hi = ci[form]
            ci[form] = (np.where(perfect, 1.0, lo), np.where(perfect, 1.0, hi))

    values = {"ICC1": icc1, "ICC2": icc2, "ICC3": icc3, "ICC1k": icc1k, "ICC2k": icc2k, "ICC3k": icc3k}
    out: dict[str, object] = {"n": n.astype(int), "k": k, "msb": msb, "msw": msw, "msj": msj, "mse": mse,
                              "reason": reason}
    for form in ICC_FORMS:
        one_way = form.startswith("ICC1")
        out[form] = {
            "icc": values[form],
            "F": f1 if one_way else f3,
            "df1": df1,
            "df2": df_within if one_way else df_err,
            "pval": p1 if one_way else p3,
            "ci_low": ci[form][0],
            "ci_high": ci[form][1],
        }
    return out


def form_reasons(result: dict[str, object], form: str) -> np.ndarray:
    """Why each feature's ICC of ``form`` is NaN ("" where it is defined)."""
    reason = np.array(result["reason"], dtype=object)
    vals = result[form]
    undefined = (reason == "") & ~np.isfinite(vals["icc"])
    reason[undefined] = "undefined: zero between-case and error variance (0/0)"
    no_ci = (reason == "") & np.isfinite(vals["icc"]) & ~(np.isfinite(vals["ci_low"]) & np.isfinite(vals["ci_high"]))
    reason[no_ci] = "confidence interval undefined (zero residual variance with reader offsets)"
    return reason


def icc_table(ratings, feature_names: Sequence[str] | None = None, *, forms: Sequence[str] = ICC_FORMS,
              alpha: float = 0.05):
    """Long pandas table: one row per (feature, form) with icc, F, df1, df2, pval, ci_low, ci_high, n, k, reason."""
    import pandas as pd

    x = _as_3d(ratings)
    names = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(x.shape[2])]
    if len(names) != x.shape[2]:
        raise InputError(f"{len(names)} feature names for {x.shape[2]} features")
    res = icc_arrays(x, alpha=alpha)
    frames = []
    for form in (normalise_form(f) for f in forms):
        vals = res[form]
        frames.append(pd.DataFrame({
            "feature": names, "form": form,
            **{key: np.asarray(vals[key], dtype=float) for key in ("icc", "F", "df1", "df2", "pval",
                                                                   "ci_low", "ci_high")},
            "n": res["n"], "k": res["k"], "reason": form_reasons(res, form).astype(str),
        }))
    return pd.concat(frames, ignore_index=True)


def ratings_from_long(frame, *, targets: str, raters: str, features: Sequence[str],
                      rater_order: Sequence[str] | None = None):
    """Long table (one row per target x rater) -> ``(ratings array, target ids, rater ids)``.

    Missing (target, rater) pairs become NaN, so those targets are dropped per feature.
    """
    dup = frame.duplicated([targets, raters])
    if dup.any():
        first = frame.loc[dup, [targets, raters]].iloc[0].tolist()
        raise InputError(f"ratings: more than one row for target/rater {first}")
    rater_ids = list(rater_order) if rater_order is not None else sorted(frame[raters].unique())
    target_ids = sorted(frame[targets].unique())
    indexed = frame.set_index([targets, raters])[list(features)]
    out = np.full((len(target_ids), len(rater_ids), len(features)), np.nan)
    for j, r in enumerate(rater_ids):
        sub = indexed.xs(r, level=1) if r in indexed.index.get_level_values(1) else None
        if sub is not None:
            out[:, j, :] = sub.reindex(target_ids).to_numpy(dtype=float)
    return out, target_ids, rater_ids
