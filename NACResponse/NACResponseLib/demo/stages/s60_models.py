"""Demo stage: clinical, radiomics, deep and combined pCR models on the synthetic cohort
(cross-validated evaluation, DeLong, calibration, decision curves, stepwise flags, RCB
regression), a saved combined model and one per-case prediction."""

from __future__ import annotations

import html

TITLE = "Response models (clinical, radiomics, deep, combined)"


def run(ctx) -> dict:
    from ...modelling.cohort import evaluate_study, train_study_model
    from ...modelling.predict import predict_case
    from ...modelling.report import report_body
    from ...modelling.selection import SelectionConfig
    from ...modelling.workflow import EvaluationSettings

    store = ctx.study
    if store is None:
        raise RuntimeError("no study (the import stage did not run)")
    quick = ctx.quick
    selection = SelectionConfig(lasso_cv=3 if quick else 10, lasso_lambdas=8 if quick else 20)
    # demo-sized: the CLI default is 200 Harrell resamples and 20 permutations
    settings = EvaluationSettings(n_splits=3 if quick else 5, n_boot=200 if quick else 2000,
                                  optimism_boot=5 if quick else 25, n_permutations=2 if quick else 5,
                                  permutation_model="combined", seed=ctx.seed)
    res = evaluate_study(store, target="pcr", selection=selection, settings=settings,
                         out_dir=store.reports_dir / "models" / "pcr")
    body = [f"<p>Report: <code>{html.escape(res['report'])}</code>. Models without feature tables: "
            f"{html.escape(', '.join(res['skipped_models']) or 'none')}.</p>"]
    body.append(report_body(res, ctx.out_dir, prefix="models_"))
    kind = next(k for k in ("combined", "radiomics", "clinical") if k in res["models"])
    model_dir = store.root / "models" / f"pcr_{kind}_logistic"
    if (model_dir / "model.json").exists():  # finished work is kept
        from ...modelling.artefact import load_model

        model = load_model(model_dir)
        trained = {"path": str(model_dir), "operating_points": model.operating_points}
    else:
        trained = train_study_model(store, model_dir, target="pcr", kind=kind, selection=selection,
                                    n_splits=settings.n_splits, seed=ctx.seed)
    from ...modelling.data import model_inputs

    X = model_inputs(store, kind)
    pid = X.index[0]
    pred = predict_case(model_dir, X.loc[[pid]], top_n=3)
    body.append(f"<p>Saved {kind} model: <code>{html.escape(trained['path'])}</code>. Patient {html.escape(pid)}: "
                f"p(pCR) = {pred['probability']:.2f}; "
                + ", ".join(f"{html.escape(k)}: {html.escape(v['label'])}" for k, v in pred["classes"].items())
                + "; top features: " + ", ".join(html.escape(t["feature"]) for t in pred["top_features"]) + "</p>")
    ctx.add_section(TITLE, "\n".join(body))
    return {"aucs": {n: round(m["metrics"]["auc"]["estimate"], 3) for n, m in res["models"].items()},
            "skipped": res["skipped_models"], "report": res["report"], "model": trained["path"]}
