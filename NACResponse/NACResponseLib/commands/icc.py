"""``nacresponse icc <study>``: per-feature ICC over readers (or perturbations) and the ICC whitelist."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import comma_list, print_result


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "icc", help="ICC of every radiomics feature over readers; writes the icc_whitelist table",
        description="Compute all six Shrout-Fleiss ICC forms per <image>__<feature> from the radiomics table "
        "(readers as raters) or, with --perturb, over mask/image perturbations of a single reader; keep "
        "features whose ICC (or lower 95%% CI) reaches the threshold. Writes tables icc and icc_whitelist and "
        "reports/icc/icc.html.")
    p.add_argument("study", type=Path)
    p.add_argument("--threshold", type=float, default=0.80, help="minimum ICC to keep a feature (default 0.80)")
    p.add_argument("--form", default="ICC2",
                   help="ICC1, ICC2 (= ICC(2,1), absolute agreement; default), ICC3, ICC1k, ICC2k, ICC3k")
    p.add_argument("--use-ci-lower", action="store_true", help="require the lower 95%% CI bound to pass")
    p.add_argument("--session", help="reader session whose readers (and provenance) to use")
    p.add_argument("--readers", help="comma-separated readers (default: all in the table)")
    p.add_argument("--timepoints", help="comma-separated timepoints (default: all)")
    p.add_argument("--table", default="radiomics", help="long feature table to read (default radiomics)")
    p.add_argument("--perturb", action="store_true",
                   help="single-reader study: ICC over perturbations (erosion/dilation, contour noise, "
                   "translation, rotation) with re-extraction")
    p.add_argument("--reader", help="--perturb: the reader whose masks are perturbed (default: the only one)")
    p.add_argument("--images", default="dce_early", help="--perturb: comma-separated image keys")
    p.add_argument("--params", default="fast", help="--perturb: radiomics parameter set or file (default fast)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..readers.cohort import run_icc
    from ..study.store import StudyStore

    res = run_icc(StudyStore(args.study), table=args.table, form=args.form, threshold=args.threshold,
                  use_ci_lower=args.use_ci_lower, session=args.session, readers=comma_list(args.readers),
                  timepoints=comma_list(args.timepoints), perturb=args.perturb, perturb_reader=args.reader,
                  images=comma_list(args.images) or ["dce_early"], params=args.params, seed=args.seed, cancel=args.cancel)
    out = res.outputs
    print(f"{out['kept']} of {out['features']} features kept ({out['fraction_kept']:.0%}); "
          f"report {Path(args.study) / 'reports' / 'icc' / 'icc.html'}")
    return print_result(res)
