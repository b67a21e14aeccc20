"""``nacresponse features``: feature extraction command group.

``features radiomics`` (pyradiomics) and ``features deep`` (ResNet-50 descriptors and
segmentation-bottleneck features) are both defined here.
"""

from __future__ import annotations

import argparse
import sys

from . import comma_list, print_result


def register(subparsers) -> None:
    parser = subparsers.add_parser("features", help="extract features (radiomics, deep features)",
                                   description="Feature extraction for a study folder.")
    features_subparsers = parser.add_subparsers(dest="features_command", metavar="KIND")
    features_subparsers.required = True
    register_radiomics(features_subparsers)
    register_deep_features(features_subparsers)


def register_radiomics(features_subparsers) -> None:
    p = features_subparsers.add_parser(
        "radiomics", help="pyradiomics features for every (image, mask) of a study",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Extract pyradiomics features, one task per (image, mask), and write the study tables\n"
                    "'radiomics' (long), 'radiomics_wide' (per patient and reader, with deltas) and\n"
                    "'radiomics_failures'.  Finished ROIs are cached: a rerun (or a run after a kill)\n"
                    "only computes what is missing.")
    p.add_argument("study", help="study folder")
    p.add_argument("--params", default=None,
                   help="pyradiomics parameter file (YAML/JSON) or a shipped set: breast (default), fast, ibsi; "
                        "a file with an 'ibsi' section gets IBSI image processing (README: IBSI mode)")
    p.add_argument("--params-2d", default=None, help="parameter file for 2D images (default: breast_2d)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--jobs", "-j", type=int, default=None, help="local worker processes (default: all cores)")
    where.add_argument("--scheduler", default=None, help="dask.distributed scheduler address, e.g. tcp://host:8786")
    where.add_argument("--serial", action="store_true", help="run in this process, one ROI at a time")
    p.add_argument("--images", type=comma_list, default=None,
                   help="comma-separated image keys/roles (default: every image on the mask's grid)")
    p.add_argument("--readers", type=comma_list, default=None, help="comma-separated readers (default: all)")
    p.add_argument("--methods", type=comma_list, default=None, help="comma-separated segmentation methods")
    p.add_argument("--timepoints", type=comma_list, default=None, help="comma-separated timepoints (default: all)")
    p.add_argument("--patients", type=comma_list, default=None, help="comma-separated patient ids (default: all)")
    p.add_argument("--resample-masks", action="store_true",
                   help="also pair masks with images on other grids (pyradiomics resamples the mask)")
    p.set_defaults(func=run_radiomics)


def run_radiomics(args) -> int:
    from ..radiomics import extract_cohort
    from ..study.store import StudyStore

    store = StudyStore(args.study)
    if args.jobs is not None and args.jobs < 1:
        from ..errors import InputError

        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    mode = "serial" if args.serial else ("dask" if args.scheduler else "process")
    result = extract_cohort(store, args.params, args.params_2d, jobs=args.jobs, scheduler=args.scheduler, mode=mode,
                            images=args.images, readers=args.readers, methods=args.methods,
                            timepoints=args.timepoints, patients=args.patients,
                            resample_masks=args.resample_masks, cancel=args.cancel)
    print(f"radiomics: {result.summary.message().splitlines()[0]}", file=sys.stderr)
    print(f"radiomics: tables radiomics ({result.long.shape[0]} rows x {result.long.shape[1]} columns), "
          f"radiomics_wide ({result.wide.shape[0]} x {result.wide.shape[1]}), radiomics_failures "
          f"({len(result.failures)}) in {store.tables_dir}")
    return print_result(result)


def register_deep_features(features_subparsers) -> argparse.ArgumentParser:
    """``features deep``: ResNet-50 descriptors and/or segmentation-bottleneck features."""
    p = features_subparsers.add_parser(
        "deep", help="deep features: ResNet-50 2.5D descriptors and segmentation-network bottleneck features",
        description="ResNet-50 descriptors of the largest tumour cross-section per timepoint (tables "
        "deep_resnet50, deep_resnet50_slices) and, with --seg-model, the segmentation network's bottleneck "
        "pooled in the tumour (table deep_bottleneck). ImageNet weights are never downloaded: give the "
        "torchvision resnet50 checkpoint file with --weights.")
    p.add_argument("study", help="study folder")
    p.add_argument("--weights", metavar="FILE",
                   help="torchvision ImageNet resnet50 state dict (.pth); default: $NACRESPONSE_RESNET50_WEIGHTS")
    p.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the weights file (else a FILE.sha256 "
                   "sidecar or the hash prefix in torchvision's file name is checked)")
    p.add_argument("--random-weights", action="store_true",
                   help="TESTING ONLY: random ResNet-50 weights (meaningless features, marked in provenance)")
    p.add_argument("--skip-resnet", action="store_true", help="compute only the bottleneck features")
    p.add_argument("--seg-model", metavar="DIR", help="segmentation model bundle: also compute bottleneck features")
    p.add_argument("--channels", default="dce_early,adc|dwi,t2w",
                   help="three image keys for the RGB channels, comma-separated; 'a|b' = a, else b "
                   "(default: %(default)s); one key (e.g. us_bmode, mg_cc_L) is repeated on all three")
    p.add_argument("--average-neighbours", action="store_true",
                   help="average the largest-section slice with the slices at index +-1")
    p.add_argument("--margin-mm", type=float, default=10.0, help="margin around the tumour box (default 10)")
    p.add_argument("--readers", help="comma-separated readers (default: all)")
    p.add_argument("--timepoints", help="comma-separated timepoints (default: all)")
    p.add_argument("--batch-size", type=int, default=8, help="slices per inference batch (default 8)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores available)")
    p.add_argument("--mode", choices=("auto", "eager", "fused", "frozen", "compile"), default="auto",
                   help="inference engine (default auto: frozen TorchScript on CPU, eager on GPU; fused: batch norm folded by hand)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bf16 only on CPUs with native bf16 and cosine >= 0.999 to fp32")
    p.add_argument("--gradcam", action="store_true", help="also write Grad-CAM maps aligned with the DCE volume")
    p.set_defaults(func=run_deep_features)
    return p


def run_deep_features(args) -> int:
    from ..deep.cohort import ResNetSettings, extract_bottleneck, extract_resnet50
    from ..errors import InputError
    from ..study.store import StudyStore

    if args.skip_resnet and not args.seg_model:
        raise InputError("--skip-resnet needs --seg-model (otherwise there is nothing to compute)")
    channels = tuple(comma_list(args.channels) or [])
    if not 1 <= len(channels) <= 3:
        raise InputError(f"--channels needs 1 to 3 image keys, got {args.channels!r}")
    store = StudyStore(args.study)
    readers, timepoints = comma_list(args.readers), comma_list(args.timepoints)
    results = []
    if not args.skip_resnet:
        settings = ResNetSettings(channels=channels, average_neighbours=args.average_neighbours,
                                  margin_mm=args.margin_mm)
        res = extract_resnet50(store, weights=args.weights, expected_sha256=args.sha256,
                               random_weights=args.random_weights, settings=settings, readers=readers,
                               timepoints=timepoints, batch_size=args.batch_size, mode=args.mode,
                               precision=args.precision, threads=args.threads, gradcam=args.gradcam,
                               cancel=args.cancel)
        results.append(res)
        if args.random_weights:
            print("WARNING: random ResNet-50 weights (--random-weights): features are for testing only",
                  file=sys.stderr)
    if args.seg_model:
        res = extract_bottleneck(store, args.seg_model, readers=readers, timepoints=timepoints, cancel=args.cancel)
        results.append(res)
    status = 0
    for res in results:
        status = max(status, print_result(res))
        if res.outputs["path"] is None:
            print(f"{res.stage}: no table written (no ROI succeeded)")
            status = 1
    return status
