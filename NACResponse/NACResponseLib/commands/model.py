"""``nacresponse model train|evaluate|predict|report|dlr``: response models on a study."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..provenance import strict_json
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

    _register_dlr(sub)


def _dlr_input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--modality", choices=("US", "MR"), default="US",
                   help="US: the us_bmode image; MR: DCE early, ADC/DWI, T2w on the largest slice +-1 (2.5D)")
    p.add_argument("--reader", help="whose outlines crop the inputs (default: the most complete on the image)")
    p.add_argument("--size", type=int, default=64, help="crop size in pixels (default 64)")
    p.add_argument("--margin-mm", type=float, help="border tissue around the tumour (default US 4, MR 10 mm)")


def _register_dlr(sub) -> None:
    d = sub.add_parser("dlr", help="dual-input deep-learning radiomics: DLR-2 / DLR-4 and the DLRP pathway")
    dsub = d.add_subparsers(dest="dlr_command", metavar="SUBCOMMAND")
    dsub.required = True
    t = dsub.add_parser("train", help="train DLR-<k> on baseline + course-k crops (cross-validated operating point)")
    t.add_argument("study", type=Path)
    t.add_argument("--step", default="c2", help="on-treatment timepoint: c2 (DLR-2) or c4 (DLR-4)")
    t.add_argument("--out", type=Path, help="bundle folder (default <study>/models/dlr_<step>)")
    _dlr_input_args(t)
    t.add_argument("--youden-weight", type=float, help="w of w*Se+(1-w)*Sp-1 (default c2 0.8, c4 0.2)")
    t.add_argument("--architecture", choices=("resnet18", "resnet50"), default="resnet18")
    t.add_argument("--width", type=int, default=64, help="first-stage channels (64 = ImageNet layout; less = smaller)")
    t.add_argument("--no-max-pool", action="store_true",
                   help="drop the stem's max pool: every stage's map twice as fine (a finer Grad-CAM)")
    t.add_argument("--imagenet", type=Path, help="torchvision ImageNet checkpoint for the encoder (SHA-256 checked)")
    t.add_argument("--imagenet-sha256", help="expected SHA-256 of --imagenet (else a .sha256 sidecar or file name)")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--gradcam-layer", choices=("layer1", "layer2", "layer3", "layer4"), default="layer2",
                   help="encoder stage whose map Grad-CAM explains (recorded in the bundle; default layer2)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--weight-decay", type=float, default=1e-2)
    t.add_argument("--patience", type=int, default=8, help="early stopping on the validation loss")
    t.add_argument("--folds", type=int, default=5, help="cross-validation folds for the out-of-fold scores")
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_dlr_train)
    e = dsub.add_parser("evaluate", help="DLR vs Clinical-k (bootstrap CI, DeLong, calibration, DCA) and DLRP")
    e.add_argument("study", type=Path)
    e.add_argument("--model", action="append", required=True, metavar="STEP=FOLDER",
                   help="a trained bundle per step, e.g. --model c2=models/dlr_c2 --model c4=models/dlr_c4")
    e.add_argument("--bootstrap", type=int, default=2000)
    e.add_argument("--folds", type=int, default=5, help="folds of the Clinical-k cross-validation")
    e.add_argument("--out", type=Path, help="report folder (default <study>/reports/dlr)")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=_dlr_evaluate)
    pr = dsub.add_parser("predict", help="score, class per operating point and Grad-CAM maps per patient")
    pr.add_argument("model", type=Path, help="DLR bundle folder")
    pr.add_argument("--study", type=Path, required=True)
    pr.add_argument("--patients", help="comma-separated patient ids (default: all with both inputs)")
    pr.add_argument("--no-gradcam", action="store_true")
    pr.add_argument("--device")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=_dlr_predict)


def _dlr_train(args) -> int:
    from ..deep.dlr import DLRNetConfig, TrainConfig
    from ..deep.dlr_cohort import DLRInputSettings, train_dlr_study
    from ..progress import Progress
    from ..study.store import StudyStore

    store = StudyStore(args.study)
    extra = {"reader": args.reader, "size": args.size}
    if args.margin_mm is not None:
        extra["margin_mm"] = args.margin_mm
    settings = DLRInputSettings.for_modality(args.modality, **extra)
    net = DLRNetConfig(architecture=args.architecture, widths=tuple(args.width * k for k in (1, 2, 4, 8)),
                       max_pool=not args.no_max_pool)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                        weight_decay=args.weight_decay, patience=args.patience, modality=args.modality,
                        augment=not args.no_augment, seed=args.seed)
    out = args.out or store.root / "models" / f"dlr_{args.step}"
    with Progress(args.folds, f"DLR {args.step}: cross-validation folds") as prog:
        res = train_dlr_study(store, out, step=args.step, settings=settings, net_config=net, train_config=train,
                              init_weights=args.imagenet, init_sha256=args.imagenet_sha256,
                              youden_weight=args.youden_weight, n_splits=args.folds,
                              gradcam_layer=args.gradcam_layer, device=args.device,
                              progress=lambda done, total, msg: prog.update(1, msg), cancel=args.cancel)
    auc = res["training"]["cv"]["auc"]
    op = res["operating_points"]["dlr"]
    print(f"{'reused' if res['reused'] else 'saved'} {res['path']} ({res['training']['n']} patients); "
          f"cross-validated AUC {auc['estimate']:.3f} [{auc['ci_low']:.3f}-{auc['ci_high']:.3f}]; operating point "
          f"w={op['weight']}: threshold {op['threshold']:.3f} (Se {op['sensitivity']:.2f}, Sp {op['specificity']:.2f})")
    for f in res["failures"]:
        print(f"FAILED {f['error']}")
    return 1 if res["failures"] else 0


def _dlr_evaluate(args) -> int:
    from ..deep.dlr_cohort import evaluate_dlr_study
    from ..errors import InputError
    from ..study.store import StudyStore

    bundles = {}
    for item in args.model:
        step, sep, folder = item.partition("=")
        if not sep or not folder:
            raise InputError(f"--model: expected STEP=FOLDER, got {item!r}")
        bundles[step.strip()] = Path(folder)
    res = evaluate_dlr_study(StudyStore(args.study), bundles, n_boot=args.bootstrap, n_splits=args.folds,
                             seed=args.seed, out_dir=args.out)
    for name, m in res["models"].items():
        a = m["metrics"]
        print(f"{name}: AUC {a['auc']['estimate']:.3f} [{a['auc']['ci_low']:.3f}-{a['auc']['ci_high']:.3f}], "
              f"Se {a['sensitivity']['estimate']:.2f}, Sp {a['specificity']['estimate']:.2f} at w={m['youden_weight']}")
    for d in res["delong"]:
        print(f"DeLong {d['model_1']} vs {d['model_2']}: diff {d['diff']:+.3f}, p = {d['p']:.3g}")
    for row in res["dlrp"]["table"]:
        print(f"DLRP {row['step']}: flagged {row['flagged']} (non-responders {row['flagged_non_responders']}, "
              f"responders {row['flagged_responders']})" if row["step"] != "not flagged" else
              f"DLRP not flagged: {row['evaluated']} (responders {row['responders']}, "
              f"non-responders {row['non_responders']})")
    print(f"evaluation: {res['path']}")
    return 0


def _dlr_predict(args) -> int:
    from ..deep.dlr_cohort import predict_dlr_study
    from ..study.store import StudyStore

    out = predict_dlr_study(StudyStore(args.study), args.model, comma_list(args.patients),
                            gradcam=not args.no_gradcam, device=args.device)
    return _print_predictions(out, args.json, lambda r: f"{r['model']} p = {r['probability']:.3f}",
                              lambda r: f" Grad-CAM {', '.join(r['gradcam'].values())}" if r["gradcam"] else "")


def _print_predictions(out: list[dict], as_json: bool, head, tail) -> int:
    """One line per patient (or JSON); exit 1 when a patient failed, the others are kept."""
    if as_json:
        print(strict_json(out, indent=1))
    else:
        for r in out:
            if "error" in r:
                print(f"{r['patient_id']}: FAILED {r['error']}")
                continue
            cls = ", ".join(f"{k}: {v['label']}" for k, v in r["classes"].items())
            print(f"{r['patient_id']}: {head(r)} [{cls}]{tail(r)}")
    return 1 if any("error" in r for r in out) else 0


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
    return _print_predictions(out, args.json, lambda r: f"p = {r['probability']:.3f}",
                              lambda r: " top: " + "; ".join(f"{t['feature']} ({t['contribution']:+.3f})"
                                                             for t in r["top_features"]))


def _report(args) -> int:
    from ..modelling.cohort import load_evaluation
    from ..modelling.report import write_report
    from ..study.store import StudyStore

    store = StudyStore(args.study)
    folder = args.out or store.reports_dir / "models" / args.target
    res = load_evaluation(Path(folder) / "evaluation.json")
    print(f"report: {write_report(res, folder, f'Response models: {args.target}')}")
    return 0
