"""``nacresponse session ...``: blinded reader sessions (create, status, next, save, import, export)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from . import comma_list


def register(subparsers) -> None:
    p = subparsers.add_parser("session", help="blinded reader sessions: create, status, next, save, import, export",
                              description="Reader sessions for inter-observer studies. Each reader gets a seeded "
                              "random case order and sees only their own segmentations; every saved version "
                              "is kept and timed in the audit log.")
    sub = p.add_subparsers(dest="session_command", metavar="ACTION")
    sub.required = True

    def add(name: str, help_: str, func, *, reader: bool = False):
        q = sub.add_parser(name, help=help_, description=help_)
        q.add_argument("study", type=Path, help="study folder")
        if name not in ("list",):
            q.add_argument("--name", required=True, help="session name")
        if reader:
            q.add_argument("--reader", required=True, help="reader id")
        q.set_defaults(func=func)
        return q

    q = add("create", "define a session: cases, readers and per-reader random order", _create)
    q.add_argument("--readers", required=True, help="comma-separated reader ids, e.g. R1,R2")
    q.add_argument("--patients", help="comma-separated patient ids (default: all)")
    q.add_argument("--timepoints", help="comma-separated timepoints (default: all)")
    q.add_argument("--images", help="comma-separated image keys to show (default: all of each case)")
    q.add_argument("--reference", default="dce_early", help="image key whose grid masks are drawn on")
    q.add_argument("--seed", type=int, default=0, help="seed of the per-reader case orders")
    q.add_argument("--adopt-existing", action="store_true",
                   help="readers' existing manual segmentations in the manifest count as their session results")
    q.add_argument("--tokens", type=Path, metavar="FILE",
                   help="give each reader a token that 'save' and 'import' require; written to FILE (reader,token) "
                   "for the administrator to hand out (only their hashes are kept in the study)")
    add("list", "list the study's sessions", _list)
    q = add("status", "cases done / open / to do and time spent per reader", _status)
    q.add_argument("--json", action="store_true")
    q = add("next", "the reader's next case (images and own latest mask only), as JSON", _next, reader=True)
    q.add_argument("--start", action="store_true", help="open the case (starts timing)")
    q = add("save", "save a new version of the reader's mask for a case", _save, reader=True)
    q.add_argument("--case", required=True, help="<patient>/<timepoint>")
    q.add_argument("--mask", required=True, type=Path, help="mask on the reference image's grid")
    q.add_argument("--keep-open", action="store_true", help="intermediate save; the case stays open")
    _token_option(q)
    q = add("stop", "leave an open case without saving (records the time spent)", _stop, reader=True)
    q.add_argument("--case", required=True)
    q = add("import", "import segmentations made elsewhere (NIfTI/NRRD/MHA, ITK-SNAP labels, DICOM SEG)",
            _import, reader=True)
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--folder", type=Path, help="folder with <patient>/<tp>/<file> or <patient>_<tp>*.<ext>")
    src.add_argument("--file", type=Path, help="one file (needs --case)")
    q.add_argument("--case", help="<patient>/<timepoint> for --file")
    q.add_argument("--label", type=int, help="label value to import (default: the only one)")
    q.add_argument("--label-name", help="label name (with --label-file, or a DICOM SEG segment label)")
    q.add_argument("--label-file", type=Path, help="ITK-SNAP label description file")
    q.add_argument("--resample", action="store_true", help="resample (nearest) masks on another grid")
    _token_option(q)
    q = add("export", "copy every reader's latest masks, versions and audit trail to a folder", _export)
    q.add_argument("--out", required=True, type=Path)
    q.add_argument("--dicom-seg", action="store_true",
                   help="also write each mask as a DICOM SEG referencing its source series (studies imported "
                   "from DICOM; needs highdicom)")
    q.add_argument("--allow-incomplete", action="store_true", help="export before every reader has finished")
    q = add("consensus", "build a consensus reader (majority vote or STAPLE) from the session's results",
            _consensus)
    q.add_argument("--method", choices=("staple", "majority"), default="staple")
    q.add_argument("--reader-id", help="id of the consensus reader (default STAPLE / MV)")


def _token_option(q) -> None:
    q.add_argument("--token", help="this reader's token, when the session has tokens "
                   "(default: the NACRESPONSE_READER_TOKEN environment variable)")


def _reader_session(args):
    """The session, with the reader's token presented (saves refuse without it when tokens are on)."""
    import os

    s = _session(args)
    s.authenticate(args.reader, args.token or os.environ.get("NACRESPONSE_READER_TOKEN"))
    return s


def _store(args):
    from ..study.store import StudyStore

    return StudyStore(args.study)


def _session(args):
    from ..readers.sessions import ReaderSession

    return ReaderSession(_store(args), args.name)


def _create(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..readers.sessions import create_session

    if args.tokens is not None and args.tokens.exists():
        raise InputError(f"{args.tokens}: already exists; choose a new file for the tokens")
    s = create_session(_store(args), args.name, comma_list(args.readers) or [], patients=comma_list(args.patients),
                       timepoints=comma_list(args.timepoints), images=comma_list(args.images), reference=args.reference,
                       seed=args.seed, adopt_existing=args.adopt_existing, tokens=args.tokens is not None)
    print(f"session {s.name!r}: {len(s.spec.cases)} cases, readers {', '.join(s.spec.readers)} (seed {s.spec.seed})")
    if args.tokens is not None:
        import os

        from ..atomic import atomic_write_text

        atomic_write_text(args.tokens, "reader,token\n" + "".join(f"{r},{t}\n" for r, t in s.issued_tokens.items()))
        os.chmod(args.tokens, 0o600)
        print(f"reader tokens written to {args.tokens} (hand each reader theirs)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from ..readers.sessions import list_sessions

    for name in list_sessions(_store(args)):
        print(name)
    return 0


def _status(args: argparse.Namespace) -> int:
    s = _session(args)
    status = s.status()
    if args.json:
        print(json.dumps({"session": s.name, "complete": s.complete, "readers": status}))
    else:
        for reader, st in status.items():
            print(f"{reader}: {st['done']}/{st['total']} done, {st['open']} open, {st['todo']} to do, "
                  f"{st['duration_s']:.0f} s")
    return 0


def _next(args: argparse.Namespace) -> int:
    s = _session(args)
    a = s.next_case(args.reader)
    if a is not None and args.start:
        a = s.start(args.reader, a.case_id)
    print(json.dumps(asdict(a) if a else {"case_id": None, "message": "all cases done"}, default=str))
    return 0


def _save(args: argparse.Namespace) -> int:
    path = _reader_session(args).save(args.reader, args.case, args.mask, finish=not args.keep_open)
    print(path)
    return 0


def _stop(args: argparse.Namespace) -> int:
    spent = _session(args).stop(args.reader, args.case)
    print(f"{args.case}: {spent:.0f} s recorded")
    return 0


def _import(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..readers.mask_import import import_folder, import_segmentation

    s = _reader_session(args)
    options = {"label": args.label, "label_name": args.label_name, "label_file": args.label_file,
               "resample": args.resample}
    if args.file:
        if not args.case:
            raise InputError("--file needs --case <patient>/<timepoint>")
        print(import_segmentation(s, args.reader, args.case, args.file, **options))
        return 0
    result = import_folder(s, args.reader, args.folder, **options)
    print(f"imported {len(result['imported'])} case(s); {len(result['failed'])} failed")
    for cid, err in result["failed"].items():
        print(f"  {cid}: {err}")
    return 1 if result["failed"] else 0


def _export(args: argparse.Namespace) -> int:
    import sys

    from ..readers.sessions import export_session, session_segmentation_sets

    session = _session(args)
    if args.dicom_seg:  # a study without DICOM series is refused before anything is copied
        from ..study.dicom_seg import export_dicom_segs

        sets = session_segmentation_sets(session, allow_incomplete=args.allow_incomplete)
        items = [(pid, tp, seg, f"{reader}/{pid}__{tp}.dcm") for (pid, tp), by_reader in sets.items()
                 for reader, seg in by_reader.items()]
        result = export_dicom_segs(session.store, items, args.out)
    print(export_session(session, args.out, allow_incomplete=args.allow_incomplete))
    if args.dicom_seg:
        print(f"DICOM SEG: {len(result['written'])} written, {len(result['failed'])} failed")
        for name, err in result["failed"].items():
            print(f"  FAILED {name}: {err}", file=sys.stderr)
        return 1 if result["failed"] else 0
    return 0


def _consensus(args: argparse.Namespace) -> int:
    from ..readers.consensus import build_consensus
    from ..readers.sessions import session_segmentation_sets

    s = _session(args)
    res = build_consensus(s.store, session_segmentation_sets(s), method=args.method, reader_id=args.reader_id)
    print(f"{res['reader']}: {len(res['made'])} made, {len(res['skipped'])} already present, "
          f"{len(res['failed'])} failed")
    for cid, err in res["failed"].items():
        print(f"  {cid}: {err}")
    return 1 if res["failed"] else 0
