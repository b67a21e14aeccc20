"""Blinded reader sessions: who delineates which case, in which order, and every saved version.

A session is a named set of cases (patient x timepoint), the image keys to show, the reference
image whose grid masks are drawn on, and a list of readers, each with a seeded random case order
(recorded in the session spec, so the order can be reproduced and reported).

Blinding: the reader-facing API (:meth:`ReaderSession.next_case`, :meth:`ReaderSession.start`,
:meth:`ReaderSession.save`, :meth:`ReaderSession.own_segmentation`) takes the reader id and only ever
returns images and that reader's own work.  Other readers' masks are reachable only through the
administrative :func:`export_session` / :func:`session_segmentation_sets`, which refuse while the
session is incomplete unless explicitly told otherwise; agreement and ICC over a session's masks
refuse until it is complete whatever the flags (:func:`refuse_hidden_masks`).

Attribution: every save records the OS user and host beside the reader id.  A session created
with tokens gives each reader a secret (only its SHA-256 is stored); :meth:`ReaderSession.save`
then refuses a reader who has not presented it (:meth:`ReaderSession.authenticate`), so nobody
saves as another reader by mistake.  A local tool cannot keep a secret from its own user: the
files are readable by whoever can read the study folder, so blinding guards against accidental
unblinding and mix-ups, not against a reader who opens the folder on purpose.

Storage (all writes atomic; the catalogue is updated in one SQLite transaction per action)::

    <study>/sessions/<name>/<reader>/<patient>__<tp>.nii.gz         current mask (in the manifest)
    <study>/sessions/<name>/<reader>/versions/<patient>__<tp>__v001.nii.gz  every saved version

Catalogue tables ``session_cases`` (status, timing per reader and case) and ``session_versions``
(one row per saved version, with SHA-256) are added to the study catalogue; start, save and stop
events go to the audit log with durations.  A version file is written before its catalogue row,
so a crash leaves at worst an orphan file that the next save skips over.

Existing delineations made elsewhere (NIfTI/NRRD/MHA, ITK-SNAP labels, DICOM SEG) are imported
through ``mask_import.py``.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import platform
import secrets
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GeometryMismatchError, InputError
from ..paths import check_id
from ..provenance import now_iso, sha256_file
from ..study.model import Segmentation, timepoint_order

SESSIONS_DIR = "sessions"

STATUSES = ("todo", "open", "done")


def case_id(patient_id: str, timepoint: str) -> str:
    return f"{patient_id}/{timepoint}"


def split_case(cid: str) -> tuple[str, str]:
    pid, sep, tp = cid.partition("/")
    if not sep or not pid or not tp:
        raise InputError(f"case id {cid!r} must look like <patient>/<timepoint>, e.g. P001/pre")
    return pid, tp


def reader_order(cases: Sequence[str], reader: str, seed: int) -> list[str]:
    """Seeded permutation of ``cases`` for one reader (independent across readers, reproducible)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(reader.encode())])
    return [cases[i] for i in rng.permutation(len(cases))]


@dataclass
class SessionSpec:
    name: str
    readers: list[str]
    cases: list[str]
    images: list[str]
    reference: str
    seed: int
    orders: dict[str, list[str]]
    created: str = ""
    adopted: dict[str, list[str]] = field(default_factory=dict)  # reader -> cases taken from the manifest
    tokens: dict[str, str] = field(default_factory=dict)  # reader -> SHA-256 of the token save requires


@dataclass
class CaseAssignment:
    """What a reader may see for one case: images and their own latest mask, nothing else."""

    session: str
    reader: str
    case_id: str
    patient_id: str
    timepoint: str
    position: int  # 1-based place in this reader's order
    total: int
    reference: str
    images: dict[str, Path]  # image key -> absolute path
    own_segmentation: Path | None  # this reader's latest saved version, for resuming
    status: str




def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def os_identity() -> dict[str, str]:
    """Who is at the keyboard, as the operating system sees it (recorded beside the reader id)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        user = f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return {"os_user": user, "host": platform.node()}


# ---- creating and opening ---------------------------------------------------------------------

def create_session(store, name: str, readers: Sequence[str], *, patients: Sequence[str] | None = None,
                   timepoints: Sequence[str] | None = None, images: Sequence[str] | None = None,
                   reference: str = "dce_early", seed: int = 0, adopt_existing: bool = False,
                   tokens: bool = False) -> ReaderSession:
    """Define a session over the study's cases and record it in the catalogue.

    With ``tokens`` each reader gets a random token (``session.issued_tokens``, shown once, for
    the administrator to hand out); only its hash is stored and saves require it.

    Cases are all (patient, timepoint) pairs of the chosen patients/timepoints whose timepoint has
    the reference image.  A session reader who already has a manual segmentation of a case in the
    manifest is an error, unless ``adopt_existing``: then that segmentation becomes the reader's
    (read-only) result for the case, e.g. for delineations made before the session existed.
    """
    check_id(name, "session name")
    readers = [check_id(r, "reader id") for r in readers]
    if not readers:
        raise InputError("a session needs at least one reader")
    if len(set(readers)) != len(readers):
        raise InputError(f"reader ids must be unique: {readers}")
    cohort = store.cohort
    wanted = set(patients) if patients else None
    if wanted:
        unknown = sorted(wanted - set(cohort.patients))
        if unknown:
            raise InputError(f"{store.manifest_path}: patients not in the study: {unknown}")
    cases, existing = [], {}
    for patient in cohort:
        if wanted is not None and patient.patient_id not in wanted:
            continue
        for tp in patient.ordered_timepoints():
            if timepoints and tp.name not in timepoints:
                continue
            if not tp.has_image(reference):
                continue
            cid = case_id(patient.patient_id, tp.name)
            cases.append(cid)
            for seg in tp.segmentations_by(method="manual"):
                if seg.reader in readers:
                    existing.setdefault(seg.reader, {})[cid] = seg
    if not cases:
        raise InputError(f"{store.root}: no case has a {reference!r} image for the chosen patients/timepoints")
    cases.sort(key=lambda c: (c.split("/")[0], timepoint_order(c.split("/")[1])))
    if existing and not adopt_existing:
        sample = [f"{r}: {', '.join(sorted(c)[:3])}" for r, c in existing.items()]
        raise InputError(f"{store.manifest_path}: readers already have manual segmentations of session cases "
                         f"({'; '.join(sample)}); use adopt_existing (--adopt-existing) or other reader ids")
    image_keys = list(images) if images else sorted({i.key for p in cohort for t in p.timepoints.values()
                                                     for i in t.images if case_id(p.patient_id, t.name) in cases})
    issued = {r: secrets.token_urlsafe(12) for r in readers} if tokens else {}
    spec = SessionSpec(name=name, readers=list(readers), cases=cases, images=image_keys, reference=reference,
                       seed=int(seed), orders={r: reader_order(cases, r, seed) for r in readers},
                       created=now_iso(), adopted={r: sorted(c) for r, c in existing.items()},
                       tokens={r: _token_hash(t) for r, t in issued.items()})
    session_id = uuid.uuid4().hex
    with store.catalogue() as db:
        if db.execute("SELECT 1 FROM reader_sessions WHERE name=?", (name,)).fetchone():
            raise InputError(f"{store.catalogue_path}: a session named {name!r} already exists")
        db.execute("INSERT INTO reader_sessions VALUES (?,?,?,?)",
                   (session_id, name, spec.created, json.dumps(asdict(spec))))
        for r in readers:
            for pos, cid in enumerate(spec.orders[r], start=1):
                seg = existing.get(r, {}).get(cid)
                db.execute("INSERT INTO session_cases (session_id, reader, case_id, position, status, finished) "
                           "VALUES (?,?,?,?,?,?)", (session_id, r, cid, pos, "done" if seg else "todo",
                                                     now_iso() if seg else None))
                if seg:
                    db.execute("INSERT INTO session_versions VALUES (?,?,?,?,?,?,?,?,?)",
                               (session_id, r, cid, 1, seg.path, sha256_file(store.path(seg.path)), now_iso(),
                                "manifest", None))
        store.audit("session.create", target=f"session:{name}", db=db,
                    details={"readers": readers, "cases": len(cases), "seed": seed, "reference": reference,
                             "adopted": {r: len(c) for r, c in existing.items()}, "tokens": bool(issued),
                             **os_identity()})
    session = ReaderSession(store, name)
    session.issued_tokens = issued
    return session


def list_sessions(store) -> list[str]:
    with store.catalogue() as db:
        return [r[0] for r in db.execute("SELECT name FROM reader_sessions ORDER BY created, name")]


class ReaderSession:
    """One session of a study; every method that touches masks is scoped to one reader."""

    def __init__(self, store, name: str):
        self.store = store
        with store.catalogue() as db:
            row = db.execute("SELECT session_id, spec FROM reader_sessions WHERE name=?", (name,)).fetchone()
        if row is None:
            raise InputError(f"{store.catalogue_path}: no reader session named {name!r} "
                             f"(sessions: {list_sessions(store)})")
        self.session_id = row[0]
        self.spec = SessionSpec(**json.loads(row[1]))
        self.name = name
        self.issued_tokens: dict[str, str] = {}
        self._authenticated: set[str] = set()

    def authenticate(self, reader: str, token: str | None) -> None:
        """Present a reader's token; needed before :meth:`save` when the session was created with tokens."""
        self._check_reader(reader)
        expected = self.spec.tokens.get(reader)
        if expected is None:
            return
        if not token or not hmac.compare_digest(_token_hash(token), expected):
            raise InputError(f"session {self.name!r}: wrong or missing token for reader {reader!r} "
                             "(ask the session administrator for yours)")
        self._authenticated.add(reader)

    # ---- paths -------------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.store.root / SESSIONS_DIR / self.name

    def _current_rel(self, reader: str, cid: str) -> str:
        pid, tp = split_case(cid)
        return f"{SESSIONS_DIR}/{self.name}/{reader}/{pid}__{tp}.nii.gz"

    def _version_rel(self, reader: str, cid: str, version: int) -> str:
        pid, tp = split_case(cid)
        return f"{SESSIONS_DIR}/{self.name}/{reader}/versions/{pid}__{tp}__v{version:03d}.nii.gz"

    def _lock(self):
        from ..filelock import exclusive_lock

        return exclusive_lock(self.folder / ".session.lock")

    # ---- checks ------------------------------------------------------------------------------
    def _check_reader(self, reader: str) -> None:
        if reader not in self.spec.readers:
            raise InputError(f"session {self.name!r}: {reader!r} is not one of its readers {self.spec.readers}")

    def _check_case(self, cid: str) -> None:
        if cid not in self.spec.cases:
            raise InputError(f"session {self.name!r}: case {cid!r} is not part of the session")

    def _case_row(self, db, reader: str, cid: str) -> dict[str, Any]:
        cols = ("position", "status", "first_started", "opened_at", "finished", "duration_s")
        row = db.execute(f"SELECT {', '.join(cols)} FROM session_cases WHERE session_id=? AND reader=? "
                         "AND case_id=?", (self.session_id, reader, cid)).fetchone()
        return dict(zip(cols, row))

    # ---- reader-facing API -------------------------------------------------------------------
    def next_case(self, reader: str) -> CaseAssignment | None:
        """The case this reader should work on: an open one (resume) first, else the next to do."""
        self._check_reader(reader)
        with self.store.catalogue() as db:
            rows = db.execute("SELECT case_id, status FROM session_cases WHERE session_id=? AND reader=? "
                              "ORDER BY position", (self.session_id, reader)).fetchall()
        for wanted in ("open", "todo"):
            for cid, status in rows:
                if status == wanted:
                    return self.assignment(reader, cid)
        return None

    def assignment(self, reader: str, cid: str) -> CaseAssignment:
        """Images of a case and this reader's own latest mask (never another reader's)."""
        self._check_reader(reader)
        self._check_case(cid)
        pid, tp_name = split_case(cid)
        tp = self.store.cohort[pid].timepoint(tp_name)
        images = {key: self.store.path(tp.image(key).path) for key in self.spec.images if tp.has_image(key)}
        if self.spec.reference not in images:
            images[self.spec.reference] = self.store.path(tp.image(self.spec.reference).path)
        with self.store.catalogue() as db:
            row = self._case_row(db, reader, cid)
        return CaseAssignment(session=self.name, reader=reader, case_id=cid, patient_id=pid, timepoint=tp_name,
                              position=row["position"], total=len(self.spec.cases), reference=self.spec.reference,
                              images=images, own_segmentation=self.own_segmentation(reader, cid),
                              status=row["status"])

    def start(self, reader: str, cid: str) -> CaseAssignment:
        """Open a case for delineation (timing starts); reopening a finished case allows a revision."""
        self._check_reader(reader)
        self._check_case(cid)
        self._refuse_adopted(reader, cid)
        now = time.time()
        with self.store.catalogue() as db:
            row = self._case_row(db, reader, cid)
            if row["status"] == "open" and row["opened_at"] is not None:  # crashed or abandoned: bank the time
                db.execute("UPDATE session_cases SET duration_s=duration_s+? WHERE session_id=? AND reader=? "
                           "AND case_id=?", (max(0.0, now - row["opened_at"]), self.session_id, reader, cid))
            db.execute("UPDATE session_cases SET status='open', opened_at=?, first_started=COALESCE(first_started,?) "
                       "WHERE session_id=? AND reader=? AND case_id=?",
                       (now, now_iso(), self.session_id, reader, cid))
            self.store.audit("session.start", actor=reader, target=f"session:{self.name}/{cid}", db=db,
                             details={"previous_status": row["status"]})
        return self.assignment(reader, cid)

    def stop(self, reader: str, cid: str) -> float:
        """Leave a case without saving; returns the seconds spent in this sitting."""
        self._check_reader(reader)
        self._check_case(cid)
        with self.store.catalogue() as db:
            row = self._case_row(db, reader, cid)
            if row["status"] != "open":
                raise InputError(f"session {self.name!r}: {reader} has not started {cid}")
            spent = max(0.0, time.time() - (row["opened_at"] or time.time()))
            has_version = db.execute("SELECT 1 FROM session_versions WHERE session_id=? AND reader=? AND case_id=?",
                                     (self.session_id, reader, cid)).fetchone()
            db.execute("UPDATE session_cases SET status=?, opened_at=NULL, duration_s=duration_s+? "
                       "WHERE session_id=? AND reader=? AND case_id=?",
                       ("done" if has_version else "todo", spent, self.session_id, reader, cid))
            self.store.audit("session.stop", actor=reader, target=f"session:{self.name}/{cid}", db=db,
                             details={"duration_s": round(spent, 3), "saved": bool(has_version)})
        return spent

    def save(self, reader: str, cid: str, mask, *, finish: bool = True, source: str = "session") -> Path:
        """Store a new version of this reader's mask for a case; earlier versions are kept.

        ``mask`` is a SimpleITK image on the reference grid, a path to one, or a numpy array
        (z, y, x) of the reference image's shape.  Returns the new version's path.
        """
        import SimpleITK as sitk

        from ..geometry import check_same_geometry
        from ..imageio import read_image, write_image

        self._check_reader(reader)
        self._check_case(cid)
        self._refuse_adopted(reader, cid)
        if reader in self.spec.tokens and reader not in self._authenticated:
            raise InputError(f"session {self.name!r} requires reader {reader!r}'s token to save "
                             "(--token, or NACRESPONSE_READER_TOKEN); nothing saved")
        pid, tp_name = split_case(cid)
        tp = self.store.cohort[pid].timepoint(tp_name)
        ref_path = self.store.path(tp.image(self.spec.reference).path)
        reference = read_image(ref_path)
        image = self._as_mask_image(mask, reference, str(ref_path))
        check_same_geometry(reference, image, str(ref_path), f"{reader}'s mask for {cid}")
        array = sitk.GetArrayViewFromImage(image)
        if not np.any(array):
            raise InputError(f"{reader}'s mask for {cid} is empty (no non-zero voxel); nothing saved")
        binary = sitk.Cast(image != 0, sitk.sitkUInt8)
        binary.CopyInformation(reference)
        current_rel = self._current_rel(reader, cid)
        with self._lock():
            # Check, then write, then commit.  Another process (Slicer while the CLI saves) may
            # have changed the manifest since this one read it: re-read it under the lock.
            self.store.refresh()
            self._refuse_foreign_manifest_entry(reader, pid, tp_name, current_rel)
            with self.store.catalogue() as db:
                latest = db.execute("SELECT MAX(version) FROM session_versions WHERE session_id=? AND reader=? "
                                    "AND case_id=?", (self.session_id, reader, cid)).fetchone()[0] or 0
            version = latest + 1
            while self.store.path(self._version_rel(reader, cid, version)).exists():  # orphan of a crash
                version += 1
            version_rel = self._version_rel(reader, cid, version)
            write_image(binary, self.store.path(version_rel))  # an orphan until its row commits
            self._ensure_manifest_row(reader, pid, tp_name, current_rel)
            now = time.time()
            with self.store.catalogue() as db:
                row = self._case_row(db, reader, cid)
                spent = max(0.0, now - row["opened_at"]) if row["status"] == "open" and row["opened_at"] else 0.0
                db.execute("INSERT INTO session_versions VALUES (?,?,?,?,?,?,?,?,?)",
                           (self.session_id, reader, cid, version, version_rel,
                            sha256_file(self.store.path(version_rel)), now_iso(), source, round(spent, 3)))
                status = "done" if finish else "open"
                db.execute("UPDATE session_cases SET status=?, opened_at=?, duration_s=duration_s+?, "
                           "finished=CASE WHEN ?='done' THEN ? ELSE finished END, "
                           "first_started=COALESCE(first_started, ?) "
                           "WHERE session_id=? AND reader=? AND case_id=?",
                           (status, now if not finish else None, spent, status, now_iso(), now_iso(),
                            self.session_id, reader, cid))
                self.store.audit("session.save", actor=reader, target=f"session:{self.name}/{cid}", db=db,
                                 details={"version": version, "path": version_rel, "duration_s": round(spent, 3),
                                          "finished": finish, "source": source, **os_identity()})
                # Last, inside the transaction: the current mask is replaced only when its version
                # row is about to commit, and a failed replacement rolls the row back.
                write_image(binary, self.store.path(current_rel))
        return self.store.path(version_rel)

    def own_segmentation(self, reader: str, cid: str) -> Path | None:
        """This reader's latest version for the case (None before the first save)."""
        versions = self.versions(reader, cid)
        return self.store.path(versions[-1]["path"]) if versions else None

    def versions(self, reader: str, cid: str) -> list[dict[str, Any]]:
        """This reader's saved versions of a case, oldest first."""
        self._check_reader(reader)
        self._check_case(cid)
        cols = ("version", "path", "sha256", "saved", "source", "duration_s")
        with self.store.catalogue() as db:
            rows = db.execute(f"SELECT {', '.join(cols)} FROM session_versions WHERE session_id=? AND reader=? "
                              "AND case_id=? ORDER BY version", (self.session_id, reader, cid)).fetchall()
        return [dict(zip(cols, r)) for r in rows]

    # ---- status ------------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        """Per reader: cases done / open / to do, and total delineation time (no masks)."""
        out = {}
        with self.store.catalogue() as db:
            for r in self.spec.readers:
                counts = dict(db.execute("SELECT status, COUNT(*) FROM session_cases WHERE session_id=? AND reader=? "
                                         "GROUP BY status", (self.session_id, r)).fetchall())
                total_s = db.execute("SELECT COALESCE(SUM(duration_s),0) FROM session_cases WHERE session_id=? "
                                     "AND reader=?", (self.session_id, r)).fetchone()[0]
                out[r] = {"total": len(self.spec.cases), **{s: counts.get(s, 0) for s in STATUSES},
                          "duration_s": round(float(total_s), 1)}
        return out

    @property
    def complete(self) -> bool:
        return all(s["done"] == s["total"] for s in self.status().values())

    # ---- internals ---------------------------------------------------------------------------
    def _refuse_adopted(self, reader: str, cid: str) -> None:
        if cid in self.spec.adopted.get(reader, []):
            raise InputError(f"session {self.name!r}: {reader}'s segmentation of {cid} was adopted from the "
                             "manifest and is read-only in this session (delineate again under a new reader id)")

    def _refuse_foreign_manifest_entry(self, reader: str, pid: str, tp_name: str, current_rel: str) -> None:
        tp = self.store.cohort[pid].timepoint(tp_name)
        for seg in tp.segmentations_by(reader=reader, method="manual"):
            if seg.path != current_rel:
                raise InputError(f"{self.store.manifest_path}: {reader} already has a manual segmentation of "
                                 f"{pid}/{tp_name} ({seg.path}) outside session {self.name!r}; it is never "
                                 "overwritten (use another reader id)")

    def _ensure_manifest_row(self, reader: str, pid: str, tp_name: str, current_rel: str) -> None:
        tp = self.store.cohort[pid].timepoint(tp_name)
        if any(s.path == current_rel for s in tp.segmentations):
            return
        self.store.add_manifest_rows([{
            "patient_id": pid, "timepoint": tp_name, "kind": "segmentation", "path": current_rel,
            "reader": reader, "method": "manual", "label": 1, "reference": self.spec.reference,
            "created": now_iso(), "description": f"reader session {self.name}", "date": tp.date, "cycle": tp.cycle,
        }])

    @staticmethod
    def _as_mask_image(mask, reference, ref_name: str):
        import SimpleITK as sitk

        from ..imageio import read_image

        if isinstance(mask, sitk.Image):
            return mask
        if isinstance(mask, (str, Path)):
            return read_image(mask)
        array = np.asarray(mask)
        expected = tuple(reversed(reference.GetSize()))
        if array.shape != expected:
            raise GeometryMismatchError(f"mask array shape {array.shape} does not match {ref_name} "
                                        f"(z, y, x) = {expected}")
        image = sitk.GetImageFromArray(array.astype(np.uint8))
        image.CopyInformation(reference)
        return image


# ---- administrative: results of a session ----------------------------------------------------

def session_segmentation_sets(session: ReaderSession, *, allow_incomplete: bool = False
                              ) -> dict[tuple[str, str], dict[str, Segmentation]]:
    """(patient, timepoint) -> {reader: latest Segmentation} of finished cases (for agreement).

    Refuses while some reader has unfinished cases (blinding) unless ``allow_incomplete``.
    """
    if not allow_incomplete and not session.complete:
        raise InputError(f"session {session.name!r} is not complete ({session.status()}); results of other "
                         "readers stay hidden until every reader has finished (or pass allow_incomplete)")
    out: dict[tuple[str, str], dict[str, Segmentation]] = {}
    with session.store.catalogue() as db:
        rows = db.execute(
            "SELECT c.reader, c.case_id, v.path FROM session_cases c JOIN session_versions v "
            "ON v.session_id=c.session_id AND v.reader=c.reader AND v.case_id=c.case_id "
            "WHERE c.session_id=? AND c.status='done' AND v.version=(SELECT MAX(version) FROM session_versions w "
            "WHERE w.session_id=c.session_id AND w.reader=c.reader AND w.case_id=c.case_id)",
            (session.session_id,)).fetchall()
    for reader, cid, path in rows:
        pid, tp = split_case(cid)
        label = 1
        if cid in session.spec.adopted.get(reader, []):  # adopted from the manifest: keep its label
            label = next((s.label for s in session.store.cohort[pid].timepoint(tp).segmentations
                          if s.path == path), 1)
        out.setdefault((pid, tp), {})[reader] = Segmentation(path=path, reader=reader, method="manual", label=label,
                                                             reference=session.spec.reference)
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], timepoint_order(kv[0][1]))))


def refuse_hidden_masks(store, paths: Iterable[str], what: str) -> None:
    """Refuse ``what`` (agreement, ICC) over masks of a reader session that is not complete.

    Session masks sit in the manifest like any other segmentation, so a comparison by reader id
    would see an unfinished session; no flag lifts this (the export has its own, administrative one).
    """
    names = sorted({Path(p).parts[1] for p in paths
                    if len(Path(p).parts) > 2 and Path(p).parts[0] == SESSIONS_DIR})
    for name in names:
        try:
            session = ReaderSession(store, name)
        except InputError:
            continue  # a folder named like a session that the catalogue does not know
        if not session.complete:
            raise InputError(f"{what}: uses masks of reader session {name!r}, which is not complete "
                             f"({session.status()}); they stay hidden until every reader has finished")


def export_session(session: ReaderSession, out_dir: str | Path, *, allow_incomplete: bool = False) -> Path:
    """Copy every reader's latest masks plus the session spec, version list and audit trail to ``out_dir``.

    Layout: ``<out>/<reader>/<patient>__<tp>.nii.gz``, ``session.json``, ``cases.csv``, ``versions.csv``,
    ``audit.csv``.
    """
    import shutil

    import pandas as pd

    from ..atomic import atomic_path, atomic_write_text

    sets = session_segmentation_sets(session, allow_incomplete=allow_incomplete)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for (pid, tp), by_reader in sets.items():
        for reader, seg in by_reader.items():
            src = session.store.path(seg.path)
            with atomic_path(out / reader / f"{pid}__{tp}.nii.gz") as tmp:
                shutil.copyfile(src, tmp)
    atomic_write_text(out / "session.json", json.dumps(asdict(session.spec), indent=2))
    with session.store.catalogue() as db:
        for table in ("session_cases", "session_versions"):
            frame = pd.read_sql_query(f"SELECT * FROM {table} WHERE session_id=?", db, params=(session.session_id,))
            atomic_write_text(out / f"{table.split('_')[1]}.csv", frame.to_csv(index=False))
        audit = pd.read_sql_query("SELECT * FROM audit_log WHERE target LIKE ?", db,
                                  params=(f"session:{session.name}%",))
    atomic_write_text(out / "audit.csv", audit.to_csv(index=False))
    return out
