"""``nacresponse agreement <study>``: Dice, Jaccard, HD95, MSD, volumes and Bland-Altman per reader pair."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import comma_list, print_result


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "agreement", help="spatial agreement between readers (Dice, HD95, MSD, volume Bland-Altman)",
        description="Compare every pair of readers' segmentations per case (of a reader session or of all "
        "manual segmentations); writes tables agreement and agreement_summary and "
        "reports/agreement/agreement.html with figures. Exit 1 when some comparisons failed.")
    p.add_argument("study", type=Path)
    p.add_argument("--session", help="use this reader session's results (after every reader finished)")
    p.add_argument("--readers", help="comma-separated readers (default: all with manual segmentations)")
    p.add_argument("--timepoints", help="comma-separated timepoints (default: all)")
    p.add_argument("--include", action="append", default=[], metavar="READER:METHOD",
                   help="add another segmentation as a reader, e.g. GT:reference (repeatable)")
    p.add_argument("--consensus", choices=("staple", "majority"),
                   help="build this consensus of the readers and compare it too")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..readers.cohort import run_agreement
    from ..study.store import StudyStore

    extra = []
    for item in args.include:
        reader, sep, method = item.partition(":")
        if not sep or not reader or not method:
            raise InputError(f"--include {item!r}: use READER:METHOD, e.g. GT:reference")
        extra.append((reader, method))
    res = run_agreement(StudyStore(args.study), session=args.session, readers=comma_list(args.readers), extra=extra,
                        consensus=args.consensus, timepoints=comma_list(args.timepoints), cancel=args.cancel)
    for _, row in res.outputs["summary"].iterrows():
        print(f"{row['reader_a']} vs {row['reader_b']}: {int(row['cases'])} cases, Dice median "
              f"{row['dice_median']:.3f}, HD95 median {row['hd95_mm_median']:.2f} mm, volume bias "
              f"{row.get('volume_bias_ml', float('nan')):.2f} mL")
    return print_result(res)
