"""``nacresponse seg``: train / predict (MONAI), FTV (I-SPY), measure (volume, diameters, RECIST), export and
import (NIfTI, DICOM SEG)."""

from __future__ import annotations

import argparse
import json
import sys

from . import comma_list, print_result


def _triple(kind):
    def parse(value: str):
        parts = [kind(v) for v in value.replace("x", ",").split(",") if v.strip()]
        if len(parts) != 3:
            raise argparse.ArgumentTypeError(f"expected three values like 32,32,16, got {value!r}")
        return tuple(parts)
    return parse


def register(subparsers) -> None:
    parser = subparsers.add_parser("seg", help="tumour segmentation: MONAI train/predict, DCE FTV, measurements",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="seg_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser("train", help="train a SegResNet on the study's segmentations; save a model bundle")
    p.add_argument("study", help="study folder")
    p.add_argument("--out", required=True, help="new model folder (bundle: configs/metadata.json, models/model.pt)")
    p.add_argument("--reader", required=True, help="whose segmentations are the labels (e.g. R1, consensus id, GT)")
    p.add_argument("--method", help="only segmentations with this method (manual, consensus, reference...)")
    p.add_argument("--channels", default="dce_pre,dce_early", help="input image keys (default dce_pre,dce_early)")
    p.add_argument("--spacing", type=_triple(float), default=(1.0, 1.0, 2.0), help="network grid mm x,y,z")
    p.add_argument("--normalisation", choices=("zscore_joint", "zscore_channel"), default="zscore_joint")
    p.add_argument("--roi", type=_triple(int), default=(32, 32, 16), help="training patch voxels x,y,z")
    p.add_argument("--filters", type=int, default=8, help="SegResNet init_filters")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--patience", type=int, default=5, help="validations without improvement before stopping")
    p.add_argument("--val-every", type=int, default=2, help="validate every N epochs")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=1, help="cases per step (2 crops each)")
    p.add_argument("--val-fraction", type=float, default=0.25, help="fraction of patients for validation")
    p.add_argument("--max-minutes", type=float, help="wall-clock budget; the best model so far is kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patients", help="comma-separated patient ids (default all)")
    p.add_argument("--timepoints", help="comma-separated timepoints (default all)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="segment cases with a trained model bundle (method monai)")
    p.add_argument("study")
    p.add_argument("--model", required=True, help="model bundle folder")
    p.add_argument("--reader", default="monai", help="reader id of the new segmentations (default monai)")
    p.add_argument("--patients")
    p.add_argument("--timepoints")
    p.add_argument("--roi", type=_triple(int), help="sliding-window ROI x,y,z (default: the model's)")
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--sw-batch", type=int, default=4)
    p.add_argument("--tta", action="store_true", help="average over flips of each axis (4x slower)")
    p.add_argument("--min-size", type=float, default=30.0, help="minimum component size, mm3")
    p.add_argument("--all-components", action="store_true", help="keep every component, not only the largest")
    p.add_argument("--probability", action="store_true", help="also save the probability map")
    p.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--jobs", type=int, help="worker processes (default 1: torch uses threads)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("ftv", help="functional tumour volume (I-SPY PE/SER) from DCE pre/early/late")
    p.add_argument("study", nargs="?", help="study folder (or give --pre/--early/--late for one case)")
    p.add_argument("--pre")
    p.add_argument("--early")
    p.add_argument("--late")
    p.add_argument("--out", help="single case: output mask file (PE/SER maps written beside it)")
    p.add_argument("--box", type=lambda v: tuple(int(x) for x in v.split(",")),
                   help="voxel box x0,y0,z0,x1,y1,z1 (half-open); single case")
    p.add_argument("--roi-reader", help="study: box = this reader's mask + --margin (default whole image)")
    p.add_argument("--roi-method")
    p.add_argument("--margin", type=float, default=10.0, help="margin around the ROI reader's mask, mm")
    p.add_argument("--pe", type=float, default=70.0, help="PE threshold, percent (default 70)")
    p.add_argument("--ser", type=float, default=0.0, help="SER lower threshold (default 0 = off)")
    p.add_argument("--background", type=float, default=30.0,
                   help="background threshold, percent of the 95th percentile pre-contrast intensity")
    p.add_argument("--min-voxels", type=int, default=10, help="connectivity filter: smallest component")
    p.add_argument("--patients")
    p.add_argument("--timepoints")
    p.set_defaults(func=_ftv)

    p = sub.add_parser("measure", help="volume (area for 2D outlines), longest in-plane and 3D diameters, RECIST category")
    p.add_argument("study")
    p.add_argument("--readers", help="comma-separated readers (default all)")
    p.add_argument("--methods", help="comma-separated methods (default all)")
    p.add_argument("--patients")
    p.add_argument("--timepoints")
    p.set_defaults(func=_measure)

    p = sub.add_parser("export", help="copy segmentations out (NIfTI), with --dicom-seg also as DICOM SEG",
                       description="Writes <out>/<patient>/<timepoint>/<reader>__<method>.nii.gz and, with "
                       "--dicom-seg, a DICOM SEG beside each that references the source series (studies "
                       "imported from DICOM). Exit 1 when some masks could not be written.")
    p.add_argument("study")
    p.add_argument("--out", required=True, help="output folder (must be empty unless --overwrite)")
    p.add_argument("--dicom-seg", action="store_true", help="also write DICOM SEG files (needs highdicom)")
    p.add_argument("--readers")
    p.add_argument("--methods")
    p.add_argument("--patients")
    p.add_argument("--timepoints")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_export)

    p = sub.add_parser("import", help="add the segments of a DICOM SEG to the study (on the referenced series)",
                       description="Each segment becomes a segmentation on the grid of the series the SEG "
                       "references. Its reader and method come from --segment, else from a NACResponse segment "
                       "description, else (manual segments) the segment label is the reader.")
    p.add_argument("study")
    p.add_argument("--dicom-seg", required=True, help="the DICOM SEG file")
    p.add_argument("--segment", action="append", default=[], metavar="NUMBER_OR_LABEL=READER[:METHOD]",
                   help="who made a segment (repeatable), e.g. --segment 1=R1 --segment Tumour=monai:monai")
    p.set_defaults(func=_import)


def _train(args) -> int:
    from ..progress import Progress
    from ..segmentation.cohort import train_from_study
    from ..segmentation.network import NetworkConfig
    from ..segmentation.preprocessing import PreprocessConfig
    from ..segmentation.training import TrainingConfig
    from ..study.store import StudyStore

    config = TrainingConfig(
        preprocess=PreprocessConfig(channels=tuple(comma_list(args.channels)), spacing=args.spacing,
                                    normalisation=args.normalisation),
        network=NetworkConfig(init_filters=args.filters), roi_size=args.roi, max_epochs=args.epochs,
        patience=args.patience, val_every=args.val_every, learning_rate=args.lr, batch_size=args.batch, val_fraction=args.val_fraction,
        seed=args.seed, max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    store = StudyStore(args.study)
    with Progress(args.epochs, "seg train") as bar:
        metrics = train_from_study(store, args.out, reader=args.reader, method=args.method, config=config,
                                   patients=comma_list(args.patients), timepoints=comma_list(args.timepoints),
                                   threads=args.threads, cancel=args.cancel,
                                   progress=lambda done, total, msg: bar.update(done - bar.done, msg))
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("history", "train_cases")}, indent=1))
    return 0


def _predict(args) -> int:
    from ..segmentation.cohort import segment_study
    from ..segmentation.inference import InferenceConfig
    from ..study.store import StudyStore

    config = InferenceConfig(roi_size=args.roi, overlap=args.overlap, sw_batch_size=args.sw_batch, tta=args.tta,
                             min_size_mm3=args.min_size, largest_component=not args.all_components)
    res = segment_study(StudyStore(args.study), args.model, reader=args.reader, config=config,
                          patients=comma_list(args.patients), timepoints=comma_list(args.timepoints),
                          save_probability=args.probability, device=args.device, threads=args.threads,
                          mode="process" if (args.jobs or 1) > 1 else "serial", jobs=args.jobs, cancel=args.cancel)
    frame = res.outputs["table"]
    for _, row in frame[frame["status"].isin(["failed", "empty"])].iterrows():
        print(f"  {row['status'].upper()} {row['patient_id']}/{row['timepoint']}: {row['message']}", file=sys.stderr)
    return print_result(res)


def _ftv_config(args):
    from ..segmentation.ftv import FTVConfig

    return FTVConfig(pe_threshold=args.pe, ser_threshold=args.ser, background_percent=args.background,
                     min_component_voxels=args.min_voxels)


def _ftv(args) -> int:
    from ..errors import InputError

    if args.study:
        from ..segmentation.cohort import ftv_study
        from ..study.store import StudyStore

        res = ftv_study(StudyStore(args.study), config=_ftv_config(args), roi_reader=args.roi_reader,
                        roi_method=args.roi_method, margin_mm=args.margin, patients=comma_list(args.patients),
                        timepoints=comma_list(args.timepoints), cancel=args.cancel)
        frame = res.outputs["table"]
        cols = [c for c in ("patient_id", "timepoint", "ftv_cm3", "status") if c in frame]
        print(frame[cols].to_string(index=False))
        return print_result(res)
    if not (args.pre and args.early and args.late and args.out):
        raise InputError("seg ftv: give a study folder, or --pre, --early, --late and --out for one case")
    from ..imageio import read_image, write_image
    from ..segmentation.ftv import functional_tumour_volume

    res = functional_tumour_volume(read_image(args.pre), read_image(args.early), read_image(args.late),
                                   box=args.box, config=_ftv_config(args))
    write_image(res.mask, args.out)
    base = args.out[:-7] if args.out.endswith(".nii.gz") else args.out.rsplit(".", 1)[0]
    write_image(res.pe, base + "_pe.nii.gz")
    write_image(res.ser, base + "_ser.nii.gz")
    print(json.dumps({"ftv_cm3": res.volume_cm3, "n_voxels": res.n_voxels, **res.ser_volumes_cm3}))
    return 0


def _measure(args) -> int:
    from ..segmentation.cohort import measure_study
    from ..study.store import StudyStore

    res = measure_study(StudyStore(args.study), readers=comma_list(args.readers), methods=comma_list(args.methods),
                        patients=comma_list(args.patients), timepoints=comma_list(args.timepoints))
    frame = res.outputs["table"]
    cols = ["patient_id", "timepoint", "reader", "method", "volume_ml", "area_mm2", "longest_inplane_diameter_mm",
            "recist"]
    if not frame["area_mm2"].notna().any():  # no 2D outline measured: no column of blanks
        cols.remove("area_mm2")
    print(frame[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return print_result(res)


def _export(args) -> int:
    from ..segmentation.export import export_segmentations
    from ..study.store import StudyStore

    result = export_segmentations(StudyStore(args.study), args.out, dicom_seg=args.dicom_seg,
                                  readers=comma_list(args.readers), methods=comma_list(args.methods),
                                  patients=comma_list(args.patients), timepoints=comma_list(args.timepoints),
                                  overwrite=args.overwrite)
    print(f"seg export: {len(result['written'])} file(s) written to {args.out}; {len(result['failed'])} failed")
    for name, err in result["failed"].items():
        print(f"  FAILED {name}: {err}", file=sys.stderr)
    return 1 if result["failed"] else 0


def _import(args) -> int:
    from ..errors import InputError
    from ..study.dicom_seg import import_dicom_seg
    from ..study.store import StudyStore

    owners = {}
    for item in args.segment:
        key, sep, who = item.partition("=")
        if not sep or not key.strip() or not who.strip():
            raise InputError(f"--segment {item!r}: expected NUMBER_OR_LABEL=READER[:METHOD]")
        reader, _, method = who.partition(":")
        owners[key.strip()] = (reader.strip(), method.strip() or "manual")
    for row in import_dicom_seg(StudyStore(args.study), args.dicom_seg, owners=owners):
        print(f"{row['patient_id']}/{row['timepoint']} {row['reader']}/{row['method']}: {row['path']}")
    return 0
