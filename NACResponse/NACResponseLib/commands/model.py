"""``nacresponse model train|evaluate|predict|report``: response models on a study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import comma_list

KINDS = ("clinical", "radiomics", "deep", "combined")
TARGETS = ("pcr", "axillary_pcr", "miller_payne", "rcb_class", "rcb_index")


def _selection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("feature selection (fitted inside cross-validation)")
    g.add_argument("--icc-unknown", choices=("keep", "drop"), default="keep",
                   help="radiomics columns absent from the icc_whitelist table: keep (default) or drop")
    g.add_argument("--max-mode-fraction", type=float, default=0.95,
                   help="drop near-constant features whose most common value exceeds this fraction (0.95)")
    g.add_argument("--spearman", type=float, default=0.80, help="redundancy threshold |rho| (default 0.80)")
    g.add_argument("--alpha", type=float, default=0.05, help="Mann-Whitney U p-value threshold (default 0.05)")
    g.add_argument("--pca", type=int, default=0, help="PCA components after z-scoring (default 0 = none)")
    g.add_argument("--no-lasso", action="store_true", help="skip the LASSO step")
    g.add_argument("--lasso-cv", type=int, default=10, help="folds choosing the LASSO lambda (default 10)")
    p.add_argument("--reader", help="reader whose features to use (default: the most complete)")
    p.add_argument("--deep-table", default="deep_bottleneck", help="deep feature table (default deep_bottleneck)")
    p.add_argument("--classifier", default="logistic",
                   help="logistic (clinical: backward stepwise by AIC), naive_bayes, svm, knn, random_forest, "
                   "lightgbm (optional package), gradient_boosting, adaboost, mlp")
    p.add_argument("--seed", type=int, default=0)


def register(subparsers) -> None:
    p = subparsers.add_parser("model", help="response models: train, evaluate, predict, report")
    sub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    sub.required = True

    t = sub.add_parser("train", help="fit one model on all labelled patients and save it (JSON + npz)")
    t.add_argument("study", type=Path)
    t.add_argument("--kind", choices=KINDS, default="combined")
    t.add_argument("--target", choices=TARGETS, default="pcr")
    t.add_argument("--out", type=Path, help="model folder (default <study>/models/<target>_<kind>_<classifier>)")
    t.add_argument("--timepoint", help="use only features available at this timepoint (stepwise models)")
    t.add_argument("--weights", default="youden=0.5,early=0.8,late=0.2",
                   help="operating points name=w of the weighted Youden index w*Se+(1-w)*Sp-1")
    t.add_argument("--tune", action="store_true", help="tune hyper-parameters by inner cross-validation")
    t.add_argument("--overwrite", action="store_true", help="replace an existing saved model")
    _selection_args(t)
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="cross-validated evaluation of clinical/radiomics/deep/combined models")
    e.add_argument("study", type=Path)
    e.add_argument("--target", choices=TARGETS[:-1], default="pcr")
    e.add_argument("--models", default=",".join(KINDS), help="comma-separated model kinds (default all four)")
    e.add_argument("--folds", type=int, default=5)
    e.add_argument("--repeats", type=int, default=1)
    e.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for CIs (default 2000)")
    e.add_argument("--optimism", type=int, default=200, help="bootstrap validation resamples: .632+ AUC, and Harrell's where valid (default 200; 0 = skip)")
    e.add_argument("--permutations", type=int, default=20, help="label permutations (leakage guard; 0 = skip)")
    e.add_argument("--permute-model", default=None, help="model to permute (default: the last evaluated)")
    e.add_argument("--stepwise-model", default="radiomics", help="model kind for stepwise prediction ('' = none)")
    e.add_argument("--early-weight", type=float, default=0.8, help="Youden weight w at the first step (0.8)")
    e.add_argument("--late-weight", type=float, default=0.2, help="Youden weight w at later steps (0.2)")
    e.add_argument("--tune", action="store_true", help="nested CV: tune hyper-parameters inside each fold")
    e.add_argument("--no-rcb", action="store_true", help="skip the RCB-index regression")
    e.add_argument("--out", type=Path, help="report folder (default <study>/reports/models/<target>)")
    _selection_args(e)
    e.set_defaults(func=_evaluate)

    pr = sub.add_parser("predict", help="probability, class per operating point and top features per patient")
    pr.add_argument("model", type=Path, help="saved model folder")
    pr.add_argument("--study", type=Path, help="study whose feature tables hold the patients")
    pr.add_argument("--patients", help="comma-separated patient ids (default: all)")
    pr.add_argument("--features", type=Path, help="instead of --study: a CSV with one row per case")
    pr.add_argument("--reader")
    pr.add_argument("--deep-table", default="deep_bottleneck")
    pr.add_argument("--top", type=int, default=5)
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.set_defaults(func=_predict)

    r = sub.add_parser("report", help="(re)write the HTML report of an evaluation")
    r.add_argument("study", type=Path)
    r.add_argument("--target", default="pcr")
    r.add_argument("--out", type=Path)
    r.set_defaults(func=_report)


def _selection(args):
    from ..modelling.selection import SelectionConfig

    return SelectionConfig(icc_unknown=args.icc_unknown, max_mode_fraction=args.max_mode_fraction,
                           spearman_threshold=args.spearman, univariate_alpha=args.alpha,
                           pca_components=args.pca or None, lasso=not args.no_lasso, lasso_cv=args.lasso_cv)


def _train(args) -> int:
    from ..errors import InputError
    from ..modelling.cohort import train_study_model
    from ..study.store import StudyStore

    store = StudyStore(args.study)
    try:
        weights = {k: float(v) for k, v in (item.split("=") for item in args.weights.split(",") if item)}
    except ValueError as exc:
        raise InputError(f"--weights: expected name=w pairs, got {args.weights!r}") from exc
    out = args.out or store.root / "models" / f"{args.target}_{args.kind}_{args.classifier}"
    res = train_study_model(store, out, target=args.target, kind=args.kind, classifier=args.classifier,
                            selection=_selection(args), reader=args.reader, deep_table=args.deep_table,
                            timepoint=args.timepoint, youden_weights=weights, seed=args.seed, tune=args.tune,
                            overwrite=args.overwrite)
    s = res["summary"]
    print(f"saved {res['path']} ({s['n']} patients, {len(s['selection']['features'])} features selected)")
    if "cv_auc" in s:
        a = s["cv_auc"]
        print(f"cross-validated AUC {a['estimate']:.3f} [{a['ci_low']:.3f}-{a['ci_high']:.3f}]")
    for name, op in res["operating_points"].items():
        print(f"operating point {name}: threshold {op['threshold']:.3f} (Se {op['sensitivity']:.2f}, "
              f"Sp {op['specificity']:.2f}, w {op['weight']})")
    return 0


def _evaluate(args) -> int:
    from ..modelling.cohort import evaluate_study
    from ..modelling.workflow import EvaluationSettings
    from ..progress import Progress
    from ..study.store import StudyStore

    kinds = comma_list(args.models) or []
    settings = EvaluationSettings(n_splits=args.folds, n_repeats=args.repeats, n_boot=args.bootstrap,
                                  optimism_boot=args.optimism, n_permutations=args.permutations,
                                  permutation_model=(args.permute_model or kinds[-1]) if args.permutations else None,
                                  tune=args.tune, seed=args.seed)
    if settings.permutation_model and args.classifier != "logistic":
        settings.permutation_model = f"{settings.permutation_model}_{args.classifier}"
    with Progress(len(kinds), "model evaluate") as prog:
        res = evaluate_study(StudyStore(args.study), target=args.target, kinds=kinds, classifier=args.classifier,
                             selection=_selection(args), settings=settings, reader=args.reader,
                             deep_table=args.deep_table, stepwise_kind=args.stepwise_model or None,
                             stepwise_weights=(args.early_weight, args.late_weight), rcb=not args.no_rcb,
                             out_dir=args.out, cancel=args.cancel, progress=prog)
    for name, m in res["models"].items():
        a = m["metrics"]["auc"]
        v = m.get("validation")
        checked = "" if not v else (f", .632+ AUC {v['auc_632plus']:.3f}" + (
            f", Harrell-corrected AUC {v['harrell_auc']:.3f}" if v["harrell_valid"]
            else " (Harrell's withheld: too few events per candidate variable)"))
        print(f"{name}: AUC {a['estimate']:.3f} [{a['ci_low']:.3f}-{a['ci_high']:.3f}] out-of-fold{checked}, "
              f"calibration slope {m['calibration']['slope']:.2f}, Hosmer-Lemeshow p {m['calibration']['hl_p']:.2g}")
    for name in res["skipped_models"]:
        print(f"skipped {name}: its feature table is missing")
    print(f"report: {res['report']}")
    return 0


def _predict(args) -> int:
    from ..errors import InputError

    if args.features:
        import pandas as pd

        from ..modelling.artefact import load_model
        from ..modelling.predict import predict_case

        if not args.features.is_file():
            raise InputError(f"{args.features}: file not found")
        df = pd.read_csv(args.features)
        model = load_model(args.model)
        ids = df["patient_id"].astype(str).tolist() if "patient_id" in df.columns else [str(i) for i in df.index]
        out = [{"patient_id": pid, **predict_case(model, df.iloc[[i]], top_n=args.top)} for i, pid in enumerate(ids)]
    elif args.study:
        from ..modelling.cohort import predict_study
        from ..study.store import StudyStore

        pats = comma_list(args.patients)
        out = predict_study(StudyStore(args.study), args.model, pats, reader=args.reader,
                            deep_table=args.deep_table, top_n=args.top)
    else:
        raise InputError("give --study (patients from the study tables) or --features (a CSV)")
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for r in out:
            if "error" in r:
                print(f"{r['patient_id']}: FAILED {r['error']}")
                continue
            cls = ", ".join(f"{k}: {v['label']}" for k, v in r["classes"].items())
            top = "; ".join(f"{t['feature']} ({t['contribution']:+.3f})" for t in r["top_features"])
            print(f"{r['patient_id']}: p = {r['probability']:.3f} [{cls}] top: {top}")
    return 1 if any("error" in r for r in out) else 0


def _report(args) -> int:
    from ..modelling.cohort import load_evaluation
    from ..modelling.report import write_report
    from ..study.store import StudyStore

    store = StudyStore(args.study)
    folder = args.out or store.reports_dir / "models" / args.target
    res = load_evaluation(Path(folder) / "evaluation.json")
    print(f"report: {write_report(res, folder, f'Response models: {args.target}')}")
    return 0
