"""``nacresponse features``: feature extraction command group.

``features radiomics`` is defined here; ``features deep`` comes from the deep-feature module
(``NACResponseLib/deep/commands.py``, ``register(features_subparsers)``) when it is installed,
through :func:`register_deep_features`.
"""

from __future__ import annotations

import argparse
import importlib
import sys


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


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
                   help="pyradiomics parameter file (YAML/JSON) or a shipped set: breast (default), fast, ibsi")
    p.add_argument("--params-2d", default=None, help="parameter file for 2D images (default: breast_2d)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--jobs", "-j", type=int, default=None, help="local worker processes (default: all cores)")
    where.add_argument("--scheduler", default=None, help="dask.distributed scheduler address, e.g. tcp://host:8786")
    where.add_argument("--serial", action="store_true", help="run in this process, one ROI at a time")
    p.add_argument("--images", type=_csv_list, default=None,
                   help="comma-separated image keys/roles (default: every image on the mask's grid)")
    p.add_argument("--readers", type=_csv_list, default=None, help="comma-separated readers (default: all)")
    p.add_argument("--methods", type=_csv_list, default=None, help="comma-separated segmentation methods")
    p.add_argument("--timepoints", type=_csv_list, default=None, help="comma-separated timepoints (default: all)")
    p.add_argument("--patients", type=_csv_list, default=None, help="comma-separated patient ids (default: all)")
    p.add_argument("--resample-masks", action="store_true",
                   help="also pair masks with images on other grids (pyradiomics resamples the mask)")
    p.set_defaults(func=run_radiomics)


def register_deep_features(features_subparsers) -> None:
    """Add ``features deep`` from ``NACResponseLib.deep.commands`` when that module exists."""
    try:
        module = importlib.import_module("NACResponseLib.deep.commands")
    except ModuleNotFoundError as exc:
        if exc.name in ("NACResponseLib.deep", "NACResponseLib.deep.commands"):
            return
        raise
    module.register(features_subparsers)


def run_radiomics(args) -> int:
    from ..cli import CANCEL
    from ..radiomics import extract_cohort
    from ..store import StudyStore

    store = StudyStore(args.study)
    if args.jobs is not None and args.jobs < 1:
        from ..errors import InputError

        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    mode = "serial" if args.serial else ("dask" if args.scheduler else "process")
    result = extract_cohort(store, args.params, args.params_2d, jobs=args.jobs, scheduler=args.scheduler, mode=mode,
                            images=args.images, readers=args.readers, methods=args.methods,
                            timepoints=args.timepoints, patients=args.patients,
                            resample_masks=args.resample_masks, cancel=CANCEL)
    s = result.summary
    print(f"radiomics: {s.message()}", file=sys.stderr)
    print(f"radiomics: tables radiomics ({result.long.shape[0]} rows x {result.long.shape[1]} columns), "
          f"radiomics_wide ({result.wide.shape[0]} x {result.wide.shape[1]}), radiomics_failures "
          f"({len(result.failures)}) in {store.tables_dir}")
    return 1 if s.failed else 0
