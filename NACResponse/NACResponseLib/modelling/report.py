"""HTML report (plus PNG figures) of a model evaluation: cohort summary, selected features, ROC
curves with bootstrap bands and AUC CIs, calibration plots, decision curves, the DeLong table, the
stepwise flag table, RCB regression and the per-case predictions."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text, atomic_write_with
from ..provenance import strict_json

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else (f"{v:.{nd}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{nd}f}")
    return html.escape(str(v))


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None, nd: int = 3) -> str:
    if not rows:
        return "<p><i>none</i></p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c), nd)}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _roc_band(y, p, n_boot: int = 200, seed: int = 0):
    from sklearn.metrics import roc_curve

    from .evaluation import stratified_bootstrap_indices

    grid = np.linspace(0, 1, 101)
    idx = stratified_bootstrap_indices(y, n_boot, np.random.default_rng(seed))
    tprs = []
    for i in idx:
        fpr, tpr, _ = roc_curve(y[i], p[i])
        tprs.append(np.interp(grid, fpr, tpr))
    return grid, np.quantile(tprs, 0.025, axis=0), np.quantile(tprs, 0.975, axis=0)


def plot_roc(models: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .evaluation import roc_points

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for k, (name, m) in enumerate(models.items()):
        y, p = np.asarray(m["y"]), np.asarray(m["oof"])
        c = COLORS[k % len(COLORS)]
        fpr, tpr = roc_points(y, p)
        a = m["metrics"]["auc"]
        ax.plot(fpr, tpr, color=c, label=f"{name}: AUC {a['estimate']:.2f} [{a['ci_low']:.2f}-{a['ci_high']:.2f}]")
        g, lo, hi = _roc_band(y, p)
        ax.fill_between(g, lo, hi, color=c, alpha=0.12)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC (out-of-fold), 95% bootstrap bands")
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


def plot_calibration(models: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for k, (name, m) in enumerate(models.items()):
        d = m["deciles"]
        c = m["calibration"]
        ax.plot([r["mean_predicted"] for r in d], [r["observed"] for r in d], "o-", color=COLORS[k % len(COLORS)],
                label=f"{name}: slope {c['slope']:.2f}, intercept {c['intercept']:.2f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="mean predicted probability", ylabel="observed proportion", xlim=(0, 1), ylim=(0, 1),
           title="Calibration (risk groups)")
    ax.legend(fontsize=7, loc="upper left")
    _save(fig, path)


def plot_dca(models: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    first = None
    for k, (name, m) in enumerate(models.items()):
        d = m["dca"]
        first = first or d
        ax.plot([r["threshold"] for r in d], [r["net_benefit"] for r in d], color=COLORS[k % len(COLORS)], label=name)
    if first:
        ax.plot([r["threshold"] for r in first], [r["treat_all"] for r in first], "--", color="black", label="treat all")
        ax.axhline(0, color="grey", ls=":", label="treat none")
        top = max(max(r["treat_all"] for r in first), 0.05)
        ax.set_ylim(-0.05, top * 1.1 + 0.02)
    ax.set(xlabel="threshold probability", ylabel="net benefit", title="Decision curves")
    ax.legend(fontsize=7)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)


def report_body(results: dict[str, Any], out_dir: Path, prefix: str = "") -> str:
    """The report's HTML fragment (also embedded in the demo report); figures go to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models = results.get("models", {})
    parts = []
    cs = results.get("cohort", {})
    if cs:
        parts.append("<h3>Cohort</h3>" + _table([cs]))
    if models:
        for fig, fn in (("roc", plot_roc), ("calibration", plot_calibration), ("dca", plot_dca)):
            fn(models, out_dir / f"{prefix}{fig}.png")
        parts.append("<h3>Discrimination, calibration, net benefit</h3>"
                     + "".join(f"<img src='{prefix}{f}.png' style='max-width:32%'>" for f in ("roc", "calibration", "dca")))
        rows = []
        for name, m in models.items():
            met = m["metrics"]
            row = {"model": name, "n": m["n"], "events": m["class_balance"]["positive"]}
            for k in ("auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"):
                if k in met:
                    row[k] = f"{met[k]['estimate']:.2f} [{met[k]['ci_low']:.2f}-{met[k]['ci_high']:.2f}]"
            row["threshold (final model)"] = m["operating_point"]["threshold"]
            row["cal. slope"] = m["calibration"]["slope"]
            row["cal. intercept"] = m["calibration"]["intercept"]
            if "hl_p" in m["calibration"]:
                c = m["calibration"]
                row["Hosmer-Lemeshow"] = f"{c['hl_statistic']:.2f} (df {c['hl_df']}, p {_fmt(c['hl_p'])})"
            v = m.get("validation")
            if v:
                row[".632+ AUC"] = v["auc_632plus"]
                row["Harrell-corrected AUC"] = v["harrell_auc"] if v["harrell_valid"] else "withheld*"
            row["EPV"] = m["epv_candidates"]
            rows.append(row)
        s = results.get("settings", {})
        rule = next((m["threshold_rule"] for m in models.values() if "threshold_rule" in m), None)
        notes = [f"Sensitivity, specificity, PPV, NPV, accuracy and F1: threshold {html.escape(rule)}; "
                 "the final model's threshold is chosen on all out-of-fold predictions."] if rule else []
        withheld = [f"{html.escape(n)}: {html.escape(m['validation']['note'])}" for n, m in models.items()
                    if m.get("validation") and not m["validation"]["harrell_valid"]]
        if withheld:
            notes.append("* " + "; ".join(withheld) + ".")
        parts.append(f"<h3>Performance (out-of-fold, {s.get('n_splits')}-fold CV; bootstrap {s.get('n_boot')} "
                     f"resamples, seed {s.get('seed')})</h3>" + _table(rows)
                     + "".join(f"<p><small>{n}</small></p>" for n in notes))
        parts.append("<h3>DeLong comparison (paired)</h3>"
                     + _table(results.get("delong", []), ["model_1", "model_2", "n", "auc1", "auc2", "diff", "z", "p"]))
        parts.append("<h3>Selected features</h3>")
        for name, m in models.items():
            sel = m["selection"]
            steps = " &rarr; ".join(f"{html.escape(st['step'])} {st['n_out']}" for st in sel["steps"])
            parts.append(f"<h4>{html.escape(name)}</h4><p>features after each step: {steps}</p>")
            if sel.get("odds_ratios"):
                if sel.get("estimator"):
                    est = ("Firth penalised likelihood (data separated: "
                           + html.escape(", ".join(sel.get("separation", {}).get("variables", [])) or "see model")
                           + ")" if sel["estimator"] == "firth" else "maximum likelihood")
                    parts.append(f"<p>estimator: {est}; 95% CIs: {html.escape(sel.get('ci_method', ''))}</p>")
                parts.append(_table(sel["odds_ratios"], ["variable", "odds_ratio", "or_ci_low", "or_ci_high", "p"]))
            else:
                w = sel.get("weights") or {}
                freq = m.get("selection_frequency", {})
                parts.append(_table([{"feature": f, sel.get("weight_kind") or "weight": w.get(f),
                                      "selected in CV folds": freq.get(f, 0.0)} for f in sel["features"]]))
    if "permutation" in results:
        pt = results["permutation"]
        parts.append(f"<h3>Permutation test ({html.escape(pt['model'])})</h3><p>observed AUC {pt['observed_auc']:.3f}; "
                     f"shuffled labels: mean AUC {pt['permuted_auc_mean']:.3f} (SD {pt['permuted_auc_sd']:.3f}, "
                     f"{pt['n_permutations']} permutations), p = {pt['p']:.3f}</p>")
    if "stepwise" in results:
        st = results["stepwise"]
        ops = [{"step": k, **v} for k, v in st["operating_points"].items()]
        parts.append("<h3>Stepwise prediction</h3>" + _table(ops) + _table(st["table"]))
    if "rcb" in results:
        r = results["rcb"]
        row = {"n": r["n"], "Spearman rho": r["spearman_rho"], "p": r["spearman_p"]}
        for k in ("auc_rcb01_vs_23", "auc_pcr"):
            if k in r:
                row[k] = f"{r[k]['estimate']:.2f} [{r[k]['ci_low']:.2f}-{r[k]['ci_high']:.2f}]"
        parts.append("<h3>RCB regression (random forest)</h3>" + _table([row]))
    if models:
        names = list(models)
        ids = models[names[0]]["patient_ids"]
        per = {n: dict(zip(models[n]["patient_ids"], models[n]["oof"])) for n in names}
        ys = dict(zip(ids, models[names[0]]["y"]))
        flags = {}
        if "stepwise" in results:
            flags = {r["patient_id"]: r["flagged_at"] for r in results["stepwise"].get("flags", []) if "patient_id" in r}
        rows = [{"patient": pid, "outcome": ys[pid], **{n: per[n].get(pid) for n in names},
                 **({"flagged at": flags.get(pid)} if flags else {})} for pid in ids]
        parts.append("<h3>Per-case predictions (out-of-fold probability of response)</h3>" + _table(rows))
    return "\n".join(parts)


def write_report(results: dict[str, Any], out_dir: str | Path, title: str = "NACResponse model report") -> Path:
    out_dir = Path(out_dir)
    body = report_body(results, out_dir) + results.get("tables_html", "")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;font-size:85%}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{body}</body></html>")
    path = out_dir / "model_report.html"
    atomic_write_text(path, page)
    return path


def results_to_json(results: dict[str, Any]) -> str:
    """Strict JSON text of an evaluation (DataFrames become record lists; a threshold of +inf is
    the string "Infinity", see ``provenance.strict_json``; ``cohort.load_evaluation`` reads it back)."""
    def conv(o):
        if hasattr(o, "to_dict"):
            return o.to_dict(orient="records")
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)

    return strict_json(results, default=conv, indent=1)
