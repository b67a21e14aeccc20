"""Blinded reader sessions: who delineates which case, in which order, and every saved version.

A session is a named set of cases (patient x timepoint), the image keys to show, the reference
image whose grid masks are drawn on, and a list of readers, each with a seeded random case order
(recorded in the session spec, so the order can be reproduced and reported).

Blinding: the reader-facing API (:meth:`ReaderSession.next_case`, :meth:`ReaderSession.start`,
:meth:`ReaderSession.save`, :meth:`ReaderSession.own_segmentation`) takes the reader id and only ever
returns images and that reader's own work.  Other readers' masks are reachable only through the
administrative :func:`export_session` / :func:`session_segmentation_sets`, which refuse while the
session is incomplete unless explicitly told otherwise.

Storage (all writes atomic; the catalogue is updated in one SQLite transaction per action)::

    <study>/sessions/<name>/<reader>/<patient>__<tp>.nii.gz         current mask (in the manifest)
    <study>/sessions/<name>/<reader>/versions/<patient>__<tp>__v001.nii.gz  every saved version

Catalogue tables ``session_cases`` (status, timing per reader and case) and ``session_versions``
(one row per saved version, with SHA-256) are added to the study catalogue; start, save and stop
events go to the audit log with durations.  A version file is written before its catalogue row,
so a crash leaves at worst an orphan file that the next save skips over.

Existing delineations can be imported per reader from NIfTI/NRRD/MHA (optionally choosing the
label by name from an ITK-SNAP label description file) and from DICOM SEG (pydicom; binary and
fractional segmentations whose frames lie on the reference image's slices).
"""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GeometryMismatchError, InputError
from ..provenance import now_iso, sha256_file
from ..study.model import Segmentation, timepoint_order

SESSIONS_DIR = "sessions"
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")

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


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise InputError(f"{what} {value!r} may only contain letters, digits, '_', '.' and '-'")
    return value


# ---- creating and opening ---------------------------------------------------------------------

def create_session(store, name: str, readers: Sequence[str], *, patients: Sequence[str] | None = None,
                   timepoints: Sequence[str] | None = None, images: Sequence[str] | None = None,
                   reference: str = "dce_early", seed: int = 0, adopt_existing: bool = False) -> ReaderSession:
    """Define a session over the study's cases and record it in the catalogue.

    Cases are all (patient, timepoint) pairs of the chosen patients/timepoints whose timepoint has
    the reference image.  A session reader who already has a manual segmentation of a case in the
    manifest is an error, unless ``adopt_existing``: then that segmentation becomes the reader's
    (read-only) result for the case, e.g. for delineations made before the session existed.
    """
    _check_id(name, "session name")
    readers = [_check_id(r, "reader id") for r in readers]
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
    spec = SessionSpec(name=name, readers=list(readers), cases=cases, images=image_keys, reference=reference,
                       seed=int(seed), orders={r: reader_order(cases, r, seed) for r in readers},
                       created=now_iso(), adopted={r: sorted(c) for r, c in existing.items()})
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
                             "adopted": {r: len(c) for r, c in existing.items()}})
    return ReaderSession(store, name)


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
        self._refuse_foreign_manifest_entry(reader, pid, tp_name, current_rel)
        with self._lock():
            with self.store.catalogue() as db:
                latest = db.execute("SELECT MAX(version) FROM session_versions WHERE session_id=? AND reader=? "
                                    "AND case_id=?", (self.session_id, reader, cid)).fetchone()[0] or 0
            version = latest + 1
            while self.store.path(self._version_rel(reader, cid, version)).exists():  # orphan of a crash
                version += 1
            version_rel = self._version_rel(reader, cid, version)
            write_image(binary, self.store.path(version_rel))
            write_image(binary, self.store.path(current_rel))
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
                                          "finished": finish, "source": source})
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


# ---- importing delineations made elsewhere ---------------------------------------------------

def read_itksnap_labels(path: str | Path) -> dict[int, str]:
    """ITK-SNAP label description file -> {label value: name}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: label description file not found")
    labels: dict[int, str] = {}
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            parts = shlex.split(text)
            labels[int(parts[0])] = parts[7] if len(parts) >= 8 else parts[-1]
        except (ValueError, IndexError):
            raise InputError(f"{path}:{lineno}: not an ITK-SNAP label line (IDX R G B A VIS MSH \"LABEL\")") from None
    if not labels:
        raise InputError(f"{path}: no labels found (is this an ITK-SNAP label description file?)")
    return labels


def label_by_name(labels: dict[int, str], name: str, where: str) -> int:
    matches = [v for v, n in labels.items() if n.strip().lower() == name.strip().lower()]
    if not matches:
        raise InputError(f"{where}: no label named {name!r} (labels: {labels})")
    return matches[0]


SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def read_dicom_seg(path: str | Path, reference, *, segment: int | str | None = None):
    """DICOM SEG -> binary SimpleITK mask on the reference image's grid.

    Each frame's pixels are placed by their patient coordinates (ImagePositionPatient,
    ImageOrientationPatient, PixelSpacing) into the reference grid; frames must lie on the
    reference's voxel centres (the usual case: the SEG was drawn on that series).  ``segment`` is a
    segment number or a SegmentLabel; default: the only segment, or segment 1.
    """
    import pydicom
    import SimpleITK as sitk

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:  # pydicom raises several types for corrupt files
        raise InputError(f"{path}: cannot read DICOM ({exc})") from None
    if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
        raise InputError(f"{path}: not a DICOM Segmentation object (SOP class {ds.get('SOPClassUID')})")
    segments = {int(s.SegmentNumber): str(s.get("SegmentLabel", "")) for s in ds.get("SegmentSequence", [])}
    if segment is None:
        number = 1 if 1 in segments or not segments else min(segments)
    elif isinstance(segment, str) and not segment.isdigit():
        number = label_by_name(segments, segment, str(path))
    else:
        number = int(segment)
    if segments and number not in segments:
        raise InputError(f"{path}: segment {number} not present (segments: {segments})")
    frames = np.asarray(ds.pixel_array)
    if frames.ndim == 2:
        frames = frames[None]
    if str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL":
        frames = frames.astype(float) / float(ds.get("MaximumFractionalValue", 255)) >= 0.5
    frames = frames != 0
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    out = np.zeros(tuple(reversed(reference.GetSize())), dtype=np.uint8)
    direction = np.asarray(reference.GetDirection(), float).reshape(3, 3)
    inv = np.linalg.inv(direction * np.asarray(reference.GetSpacing(), float)[None, :])
    origin = np.asarray(reference.GetOrigin(), float)
    off_grid = 0
    placed = 0
    for i, per_frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        def group(name, per_frame=per_frame, i=i):
            if name in per_frame:
                return per_frame[name][0]
            if shared is not None and name in shared:
                return shared[name][0]
            raise InputError(f"{path}: frame {i + 1} lacks {name}")

        seg_no = int(group("SegmentIdentificationSequence").ReferencedSegmentNumber)
        if seg_no != number or not frames[i].any():
            continue
        position = np.asarray(group("PlanePositionSequence").ImagePositionPatient, float)
        iop = np.asarray(group("PlaneOrientationSequence").ImageOrientationPatient, float)
        row_spacing, col_spacing = (float(v) for v in group("PixelMeasuresSequence").PixelSpacing)
        rr, cc = np.nonzero(frames[i])
        points = position[None] + cc[:, None] * col_spacing * iop[None, :3] + rr[:, None] * row_spacing * iop[None, 3:]
        index = (points - origin) @ inv.T  # continuous (x, y, z) index
        rounded = np.rint(index).astype(int)
        off_grid += int(np.sum(np.abs(index - rounded).max(axis=1) > 0.25))
        inside = np.all((rounded >= 0) & (rounded < np.asarray(reference.GetSize())[None]), axis=1)
        r = rounded[inside]
        out[r[:, 2], r[:, 1], r[:, 0]] = 1
        placed += int(inside.sum())
    if off_grid:
        raise GeometryMismatchError(f"{path}: {off_grid} segment pixels do not lie on the reference image's voxel "
                                    "grid (the SEG was drawn on another series or resolution)")
    if not placed:
        raise InputError(f"{path}: segment {number} has no pixel inside the reference image")
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(reference)
    return image


def load_segmentation_file(path: str | Path, reference, *, label: int | None = None, label_name: str | None = None,
                           label_file: str | Path | None = None, resample: bool = False):
    """Read a mask made elsewhere (NIfTI/NRRD/MHA or DICOM SEG) as a binary mask on the reference grid."""
    import SimpleITK as sitk

    from ..geometry import Geometry, geometry_differences
    from ..imageio import read_image

    path = Path(path)
    if path.suffix.lower() == ".dcm" or (path.is_file() and _is_dicom(path)):
        return read_dicom_seg(path, reference, segment=label_name or label)
    image = read_image(path)
    if label_name is not None:
        if label_file is None:
            raise InputError(f"{path}: --label-name needs an ITK-SNAP label description file (--label-file)")
        label = label_by_name(read_itksnap_labels(label_file), label_name, str(label_file))
    array = sitk.GetArrayViewFromImage(image)
    present = np.unique(array[array != 0])
    if present.size == 0:
        raise InputError(f"{path}: mask is empty (no non-zero voxel)")
    if label is None:
        if present.size > 1:
            raise InputError(f"{path}: several labels {present[:10].tolist()}; choose one (label / label name)")
        label = int(present[0])
    if label not in present:
        raise InputError(f"{path}: label {label} absent (labels present: {present[:10].tolist()})")
    binary = sitk.Cast(image == int(label), sitk.sitkUInt8)
    diffs = geometry_differences(Geometry.of(reference), Geometry.of(binary))
    if diffs:
        if not resample:
            raise GeometryMismatchError(f"{path}: grid differs from the reference image ({'; '.join(diffs)}); "
                                        "resample (nearest neighbour) with --resample if it covers the same anatomy")
        binary = sitk.Resample(binary, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        if not np.any(sitk.GetArrayViewFromImage(binary)):
            raise InputError(f"{path}: the mask lies outside the reference image after resampling")
    return binary


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def import_segmentation(session: ReaderSession, reader: str, cid: str, path: str | Path, **options) -> Path:
    """Import one file as ``reader``'s segmentation of a case (a new version; audit source 'import')."""
    from ..imageio import read_image

    session._check_reader(reader)
    session._check_case(cid)
    pid, tp = split_case(cid)
    ref = session.store.path(session.store.cohort[pid].timepoint(tp).image(session.spec.reference).path)
    mask = load_segmentation_file(path, read_image(ref), **options)
    return session.save(reader, cid, mask, source=f"import:{Path(path).name}")


def find_case_files(folder: str | Path, cases: Iterable[str]) -> dict[str, Path]:
    """Match files to cases: ``<patient>/<tp>/*`` folders or names starting ``<patient>_<tp>``/``<patient>__<tp>``."""
    from ..imageio import has_image_suffix

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and (has_image_suffix(p) or _is_dicom(p))]
    found: dict[str, Path] = {}
    for cid in cases:
        pid, tp = split_case(cid)
        hits = [p for p in files
                if p.relative_to(folder).parts[:2] == (pid, tp)
                or re.match(rf"^{re.escape(pid)}_{{1,2}}{re.escape(tp)}(?![A-Za-z0-9])", p.name)]
        if len(hits) > 1:
            raise InputError(f"{folder}: several files for {cid}: {[str(h) for h in hits[:4]]}")
        if hits:
            found[cid] = hits[0]
    return found


def import_folder(session: ReaderSession, reader: str, folder: str | Path, **options) -> dict[str, Any]:
    """Import every file of ``folder`` that matches a session case; per-file failures are recorded."""
    from ..errors import NACError

    done, failed = [], {}
    for cid, path in find_case_files(folder, session.spec.cases).items():
        try:
            import_segmentation(session, reader, cid, path, **options)
            done.append(cid)
        except NACError as exc:
            failed[cid] = str(exc)
    return {"imported": done, "failed": failed}
