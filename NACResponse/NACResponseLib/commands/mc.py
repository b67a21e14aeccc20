"""``nacresponse mc detect|extent|compare <study>``: microcalcifications on the study's mammograms."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ..errors import InputError
from ..mc.detect import DetectorParams
from ..mc.longitudinal import MAX_MATCH_MM
from . import comma_list, print_result


def register(subparsers) -> None:
    p = subparsers.add_parser("mc", help="microcalcification detection, cluster extent and RESMIN comparison",
                              description="Microcalcifications (MCs) on the mammograms (roles mg_cc, mg_mlo) of a study.")
    sub = p.add_subparsers(dest="mc_command", required=True)

    d = sub.add_parser("detect", help="detect MCs on every mammogram (tables mc_images, mc_detections)",
                       description="Classical multi-scale detector in mm units; an image already done with the same "
                       "file and parameters is reused unless --force. Per-image failures are reported and the run goes on (exit 1).")
    d.add_argument("study", type=Path)
    d.add_argument("--spacing-mm", type=float, help="pixel size to use when the files lack one")
    d.add_argument("--threshold", type=float, default=DetectorParams().threshold,
                   help=f"detection threshold in noise SDs (default {DetectorParams().threshold:g})")
    d.add_argument("--timepoints", help="comma-separated timepoints (default: all)")
    d.add_argument("--classifier", type=Path, help="folder of a candidate classifier saved by 'mc train-classifier' "
                   "(its SHA-256 is recorded with the parameters)")
    d.add_argument("--force", action="store_true", help="re-detect images already done")
    d.set_defaults(func=_detect)

    t = sub.add_parser("train-classifier", help="learn the optional second-stage candidate classifier",
                       description="Gradient boosting on candidate features (mc.classifier), trained on realistic "
                       "phantoms and, with --study, on the user's edits of that study's detections (kept = MC, "
                       "removed = not). Saved without pickle (model.json + arrays.npz).")
    t.add_argument("--out", type=Path, required=True, help="folder to write the model to")
    t.add_argument("--study", type=Path, help="study whose mc edits add training labels")
    t.add_argument("--phantom-images", type=int, default=48, help="phantom images to train on (default 48; 0: none)")
    t.add_argument("--seed", type=int, default=10_000)
    t.add_argument("--overwrite", action="store_true")
    t.set_defaults(func=_train)

    e = sub.add_parser("extent", help="apply user edits, cluster MCs, measure extents (tables mc_mcs, mc_clusters)",
                       description="Clusters: single linkage at --link-distance-mm, kept when it holds a core of "
                       ">= --min-count MCs linked at --core-link-mm within --window-mm. User edits: --edits FILE.json "
                       "(with --patient/--timepoint/--image) "
                       "stores {'add': [[x_mm, y_mm]...], 'remove': [...]} for that mammogram first.")
    e.add_argument("study", type=Path)
    e.add_argument("--rule", choices=["default", "dense-core", "birads-grouped"], default="default",
                   help="named cluster rule (mc.clusters.RULES; README: their measured operating points); the "
                   "options below override its values")
    e.add_argument("--link-distance-mm", type=float, help="single linkage giving a cluster's members and extent "
                   "(default 10)")
    e.add_argument("--core-link-mm", type=float, help="link of the dense core that makes a group a cluster "
                   "(default: the group itself; 5: the dense-core rule)")
    e.add_argument("--min-count", type=int, help="MCs the core needs within --window-mm (default 3; BI-RADS "
                   "'grouped': 5 with --core-link-mm 5)")
    e.add_argument("--window-mm", type=float, help="(default 10)")
    e.add_argument("--edits", type=Path, help="JSON edit file to store before recomputing")
    e.add_argument("--patient")
    e.add_argument("--timepoint")
    e.add_argument("--image", help="image key, e.g. mg_cc_L")
    e.add_argument("--force", action="store_true")
    e.set_defaults(func=_extent)

    c = sub.add_parser("compare", help="pre/post MC extent change, RESMIN category and flag (tables "
                       "mc_longitudinal, mc_resmin)")
    c.add_argument("study", type=Path)
    c.add_argument("--pre", default="pre")
    c.add_argument("--post", default="post")
    c.add_argument("--recist", type=Path, help="CSV with columns patient_id, recist (CR/PR/SD/PD) overriding the "
                   "segmentation-based tumour category")
    c.add_argument("--reader", help="segmentation reader for the tumour RECIST category")
    c.add_argument("--method", help="segmentation method (default: reference, consensus, then manual)")
    c.add_argument("--max-match-mm", type=float, default=MAX_MATCH_MM,
                   help=f"pre/post clusters further apart are not paired (default {MAX_MATCH_MM:g})")
    c.set_defaults(func=_compare)


def _detect(args: argparse.Namespace) -> int:
    from ..mc.cohort import detect_study
    from ..mc.detect import DetectorParams
    from ..study.store import StudyStore

    extra = {}
    if args.classifier:
        from ..mc.classifier import load_classifier

        clf = load_classifier(args.classifier)  # fails here, once, on a bad folder
        extra = {"classifier": str(args.classifier.resolve()), "classifier_sha256": clf.sha256}
    res = detect_study(StudyStore(args.study), params=DetectorParams(threshold=args.threshold, **extra),
                       spacing_mm=args.spacing_mm, timepoints=comma_list(args.timepoints), force=args.force,
                       cancel=args.cancel)
    return print_result(res)


def _train(args: argparse.Namespace) -> int:
    from ..mc.classifier_training import train_classifier
    from ..study.store import StudyStore

    store = StudyStore(args.study) if args.study else None
    res = train_classifier(args.out, phantom_images=args.phantom_images, store=store, seed=args.seed,
                           overwrite=args.overwrite)
    study = res["study"]
    if study is not None:
        print(f"study edits: {study['images']} mammograms, {study['positives']} MCs, {study['negatives']} removed, "
              f"{study['added_without_candidate']} added points without a candidate (not used)")
    print(f"{res['candidates']} candidates ({res['mcs']} MCs); threshold {res['threshold']:.3f} keeps "
          f"{res['target_sensitivity']:.0%} of MCs and {res['cv_false_kept_fraction']:.1%} of false candidates "
          f"(out of fold); saved {res['path']} (SHA-256 {res['sha256']})")
    return 0


def _extent(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..mc.clusters import RULES
    from ..mc.cohort import extent_study, save_edits
    from ..mc.editing import load_edits
    from ..study.store import StudyStore

    store = StudyStore(args.study)
    if args.edits:
        if not (args.patient and args.timepoint and args.image):
            raise InputError("--edits needs --patient, --timepoint and --image")
        save_edits(store, args.patient, args.timepoint, args.image, load_edits(args.edits), actor="cli")
    given = {"link_distance_mm": args.link_distance_mm, "core_link_mm": args.core_link_mm,
             "min_count": args.min_count, "window_mm": args.window_mm}
    res = extent_study(store, params=replace(RULES[args.rule], **{k: v for k, v in given.items() if v is not None}),
                       force=args.force)
    rule = res.outputs["cluster_rule"]
    print(f"{res.outputs['clusters']} clusters; cluster rule {rule['name']}: {rule['description']}")
    for case, pts in res.outputs["unmatched_removals"].items():
        print(f"WARNING {case}: removal points matched no detection: {pts}")
    return print_result(res)


def _compare(args: argparse.Namespace) -> int:
    from ..mc.cohort import compare_study
    from ..study.store import StudyStore

    recist = _read_recist(args.recist) if args.recist else None
    res = compare_study(StudyStore(args.study), pre=args.pre, post=args.post, recist=recist, reader=args.reader,
                        method=args.method, max_match_mm=args.max_match_mm)
    for row in res.outputs["resmin"].itertuples():
        flag = "RESMIN " if row.resmin_flag else ""
        print(f"{flag}{row.patient_id} {row.laterality}: MC {row.mc_category} ({row.pre_extent_mm:.1f} -> "
              f"{row.post_extent_mm:.1f} mm), tumour {row.tumour_recist}")
    print(f"{res.outputs['patients']} patient sides compared, {res.outputs['flagged']} flagged")
    return print_result(res)


def _read_recist(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise InputError(f"{path}: RECIST file not found")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"patient_id", "recist"} <= set(rows[0]):
        raise InputError(f"{path}: needs columns patient_id and recist")
    out = {}
    for r in rows:
        cat = r["recist"].strip().upper()
        if cat not in ("CR", "PR", "SD", "PD"):
            raise InputError(f"{path}: patient {r['patient_id']}: RECIST category {r['recist']!r} is not CR/PR/SD/PD")
        out[r["patient_id"].strip()] = cat
    return out
