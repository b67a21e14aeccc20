"""Study-level entry points used by the CLI, the demo and the Slicer module: evaluate the four
models on a study, train and save one model, predict saved-model probabilities for patients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text
from ..columns import column_timepoints
from ..errors import InputError
from ..provenance import collect, read_json
from ..study.model import timepoint_order
from .data import MODEL_KINDS, clinical_frame, icc_whitelist, model_inputs
from .pipeline import ModelSpec, cross_validated_predictions, fit_model, selection_report
from .selection import SelectionConfig
from .stepwise import DEFAULT_WEIGHTS, run_stepwise
from .targets import class_balance, make_target, target_task
from .workflow import THRESHOLD_RULE, EvaluationSettings, evaluate_models


def _available_kinds(store, kinds, deep_table: str) -> tuple[list[str], list[str]]:
    ok, skipped = [], []
    for k in kinds:
        need = {"radiomics": ["radiomics_wide"], "deep": [deep_table],
                "combined": ["radiomics_wide", deep_table], "clinical": []}[k]
        (ok if all(store.has_table(t) for t in need) else skipped).append(k)
    return ok, skipped


def _input_paths(store, kinds, deep_table):
    names = {"radiomics_wide"} if {"radiomics", "combined"} & set(kinds) else set()
    if {"deep", "combined"} & set(kinds):
        names.add(deep_table)
    if store.has_table("icc_whitelist"):
        names.add("icc_whitelist")
    paths = [store.table_path(n) for n in sorted(names) if store.has_table(n)]
    if store.clinical_path.exists():
        paths.append(store.clinical_path)
    return paths


def evaluate_study(store, *, target: str = "pcr", kinds=MODEL_KINDS, classifier: str = "logistic",
                   selection: SelectionConfig | None = None, settings: EvaluationSettings | None = None,
                   reader: str | None = None, deep_table: str = "deep_bottleneck",
                   stepwise_kind: str | None = "radiomics", stepwise_weights=DEFAULT_WEIGHTS,
                   rcb: bool = True, out_dir: str | Path | None = None, cancel=None, progress=None) -> dict[str, Any]:
    """Evaluate models of ``kinds`` for a binary target; write evaluation.json, the report and the
    ``model_predictions`` table.  Kinds whose feature tables are missing are skipped (and listed)."""
    from .report import results_to_json, write_report

    if target_task(target) != "classification":
        raise InputError(f"target {target!r} is continuous; the RCB regression runs with a binary target (rcb=True)")
    settings = settings or EvaluationSettings()
    selection = selection or SelectionConfig()
    kinds, skipped = _available_kinds(store, kinds, deep_table)
    if not kinds:
        raise InputError(f"{store.root}: no feature tables for any of the requested models (skipped {skipped})")
    clin = clinical_frame(store)
    y_all = make_target(clin, target)
    wl = icc_whitelist(store)
    frames = {k: model_inputs(store, k, reader=reader, deep_table=deep_table) for k in kinds}
    specs = [ModelSpec(k, classifier, selection, wl, random_state=settings.seed) for k in kinds]
    results = evaluate_models(frames, y_all, specs, settings, cancel=cancel, progress=progress)
    results["target"] = target
    results["skipped_models"] = skipped
    results["cohort"] = {"patients": len(clin), "target": target, **class_balance(y_all),
                         "icc_whitelist": "yes" if wl is not None else "no (all radiomics features considered)",
                         "models": ", ".join(kinds)}
    # stepwise prediction across courses
    sk = stepwise_kind if stepwise_kind in frames else None
    if sk:
        X = frames[sk]
        tps = sorted({t for c in X.columns for t in column_timepoints(c)}, key=timepoint_order)
        steps = [t for t in tps if timepoint_order(t) > 0]
        y = y_all.reindex(X.index)
        keep = y.notna().to_numpy()
        if steps:
            probs, fold_thr = {}, {}
            w = {s: (stepwise_weights[0] if i == 0 else stepwise_weights[-1]) for i, s in enumerate(steps)}
            for tp in steps:
                Xt = model_inputs(store, sk, reader=reader, deep_table=deep_table, timepoint=tp).loc[keep]
                spec = ModelSpec(sk, classifier, selection, wl, random_state=settings.seed)
                cv = cross_validated_predictions(spec, Xt, y[keep].to_numpy().astype(int), n_splits=settings.n_splits,
                                                 seed=settings.seed, youden_weights={"step": w[tp]})
                probs[tp], fold_thr[tp] = cv["oof"], cv["case_thresholds"]["step"]
            sw = run_stepwise(y[keep].to_numpy().astype(int), probs, w, ids=list(X.index[keep]),
                              case_thresholds=fold_thr)
            results["stepwise"] = {"model": sk, "weights": w, "operating_points": sw["operating_points"],
                                   "threshold_rule": THRESHOLD_RULE,
                                   "table": sw["table"].to_dict(orient="records"),
                                   "flags": sw["flags"].to_dict(orient="records")}
    if rcb and "rcb_index" in clin and clin["rcb_index"].notna().sum() >= 10:
        from .rcb import rcb_regression

        X = frames.get("radiomics", frames[kinds[-1]])
        r = clin["rcb_index"].reindex(X.index)
        results["rcb"] = rcb_regression(X, r, clin["pcr"].reindex(X.index) if "pcr" in clin else None,
                                        selection=selection, n_splits=settings.n_splits, seed=settings.seed,
                                        n_boot=settings.n_boot, whitelist=wl)
    results["provenance"] = collect(step="model evaluate", parameters={
        "target": target, "kinds": kinds, "classifier": classifier, "selection": selection.to_dict(),
        "settings": settings.to_dict(), "reader": reader, "deep_table": deep_table},
        inputs=_input_paths(store, kinds, deep_table), base=store.root)
    out_dir = Path(out_dir) if out_dir else store.reports_dir / "models" / target
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_predictions(store, results)
    from ..study.tables_export import export_beside_report

    used = [p.stem for p in _input_paths(store, kinds, deep_table) if p.suffix == ".parquet"]
    results["tables_html"] = export_beside_report(store, [*used, f"model_predictions_{target}"], out_dir)
    atomic_write_text(out_dir / "evaluation.json", results_to_json(results))
    results["report"] = str(write_report(results, out_dir, f"Response models: {target}"))
    return results


def _write_predictions(store, results) -> None:
    import pandas as pd

    rows = []
    for name, m in results["models"].items():
        # the call made with the threshold chosen by the training fold the patient was not in
        for pid, yy, p, c in zip(m["patient_ids"], m["y"], m["oof"], m["oof_called"]):
            rows.append({"patient_id": pid, "model": name, "target": results["target"], "outcome": int(yy),
                         "probability_oof": float(p), "predicted_at_operating_point": int(c >= 0.5)})
    store.write_table(f"model_predictions_{results['target']}", pd.DataFrame(rows), results["provenance"])


def train_study_model(store, out_dir: str | Path, *, target: str = "pcr", kind: str = "combined",
                      classifier: str = "logistic", selection: SelectionConfig | None = None,
                      reader: str | None = None, deep_table: str = "deep_bottleneck", timepoint: str | None = None,
                      youden_weights: dict[str, float] | None = None, n_splits: int = 5, seed: int = 0,
                      tune: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Fit one model on all labelled patients and save it; operating points come from the
    out-of-fold predictions (never from the in-sample fit)."""
    from .artefact import save_model

    if (Path(out_dir) / "model.json").exists() and not overwrite:
        raise InputError(f"{out_dir}: a saved model already exists (use --overwrite or another folder)")
    task = target_task(target)
    selection = selection or SelectionConfig()
    X = model_inputs(store, kind, reader=reader, deep_table=deep_table, timepoint=timepoint)
    y = make_target(clinical_frame(store), target).reindex(X.index)
    keep = y.notna().to_numpy()
    X, yv = X.loc[keep], y[keep].to_numpy()
    if task == "classification":
        yv = yv.astype(int)
        if classifier in ("svm", "adaboost", "lightgbm"):
            raise InputError(f"classifier {classifier!r} can be evaluated but not saved; "
                             "choose logistic, naive_bayes, knn, mlp, random_forest or gradient_boosting")
    spec = ModelSpec(kind, classifier if task == "classification" else "random_forest", selection,
                     icc_whitelist(store), task=task, random_state=seed)
    ops: dict[str, Any] = {}
    if task == "classification":
        from .evaluation import bootstrap_metrics, weighted_youden

        oof = cross_validated_predictions(spec, X, yv, n_splits=n_splits, seed=seed, tune=tune)["oof"]
        weights = youden_weights or {"youden": 0.5, "early": DEFAULT_WEIGHTS[0], "late": DEFAULT_WEIGHTS[1]}
        ops = {name: weighted_youden(yv, oof, w) for name, w in weights.items()}
        cv_auc = bootstrap_metrics(yv, oof, n_boot=2000, seed=seed)["auc"]
    pipe = fit_model(spec, X, yv, tune=tune, seed=seed)
    summary = {"n": int(len(yv)), "feature_columns": int(X.shape[1]), "selection": selection_report(pipe),
               "spec": spec.to_dict(), "timepoint": timepoint}
    if task == "classification":
        summary.update(class_balance(yv))
        summary["cv_auc"] = cv_auc
    else:
        summary["rcb_mean"] = float(np.mean(yv))
    prov = collect(step="model train", parameters={"target": target, "kind": kind, "classifier": classifier,
                                                   "selection": selection.to_dict(), "reader": reader,
                                                   "deep_table": deep_table, "timepoint": timepoint,
                                                   "seed": seed, "tune": tune},
                   inputs=_input_paths(store, [kind], deep_table), base=store.root)
    path = save_model(out_dir, pipe, target=target, kind=kind, operating_points=ops, training_summary=summary,
                      provenance=prov, overwrite=overwrite, X_train=X)
    store.audit("model train", target=str(path), details={"target": target, "kind": kind, "classifier": classifier})
    return {"path": str(path), "operating_points": ops, "summary": summary}


def predict_study(store, model_dir: str | Path, patients: list[str] | None = None, *, reader: str | None = None,
                  deep_table: str = "deep_bottleneck", top_n: int = 5) -> list[dict[str, Any]]:
    """predict_case for study patients (all by default); a patient lacking features is reported."""
    from .artefact import ModelFileError, load_model
    from .predict import predict_case

    model = load_model(model_dir)
    X = model_inputs(store, model.meta["kind"], reader=reader, deep_table=deep_table)
    wanted = patients or list(X.index)
    out = []
    for pid in wanted:
        if pid not in X.index:
            out.append({"patient_id": pid, "error": f"no features for patient {pid!r} in the study tables"})
            continue
        try:
            out.append({"patient_id": pid, **predict_case(model, X.loc[[pid]], top_n=top_n)})
        except ModelFileError:
            raise  # the model is unusable for every patient: a bad input, not a failed case
        except InputError as exc:
            out.append({"patient_id": pid, "error": str(exc)})
    return out


def load_evaluation(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no evaluation found (run 'nacresponse model evaluate' first)")
    return read_json(path.read_text(encoding="utf-8"))
