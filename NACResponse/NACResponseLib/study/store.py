"""The embedded default store: one study folder, and the one owner of its layout.

::

    <study>/
      manifest.csv        files -> patient / timepoint / role (see manifest.py)
      clinical.csv        clinical variables and outcomes per patient
      images/ ...         imported images and segmentations (paths in the manifest are relative)
      segmentations/<patient>/<timepoint>/<reader>__<method>.nii.gz   masks made by `seg predict` / `seg ftv`
      sessions/<session>/<reader>/...      reader-session masks and their saved versions
      mc_edits/<patient>/<timepoint>/<image>.json   user corrections of the MC detections
      deep/gradcam/<patient>/<timepoint>/<reader>__resnet50.nii.gz   Grad-CAM maps
      catalogue.sqlite    runs, reader sessions and their cases/versions, audit log, provenance, table index
      tables/<name>.parquet   result tables; provenance is embedded in the Parquet metadata too
      reports/ ...        validation report, figures, HTML reports (+ CSV copies of their tables),
                          saved models (reports/models/)
      dicom/<SeriesInstanceUID>.json   DICOM imports: series header records for DICOM SEG export
      work/<stage>/       per-case results of runner stages (radiomics, seg_predict, mc_detect), one
                          ``<digest>.json`` per case keyed by its inputs and parameters (runner.result_digest)
      cache/<stage>/      per-case arrays of stages that batch outside the runner (deep_resnet50,
                          deep_bottleneck), keyed the same way; work/ and cache/ may be deleted (recomputed)

All file writes are atomic (see atomic.py); the catalogue uses SQLite transactions.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_with
from ..errors import CancelledError, InputError, ManifestError
from ..filelock import exclusive_lock
from ..paths import within
from ..provenance import now_iso, read_json, strict_json
from .manifest import (
    CLINICAL_NAME,
    MANIFEST_NAME,
    cohort_from_rows,
    read_clinical,
    read_manifest_rows,
    write_clinical,
    write_manifest,
)
from .model import Cohort

CATALOGUE_NAME = "catalogue.sqlite"
PROVENANCE_KEY = b"nacresponse.provenance"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, step TEXT NOT NULL, started TEXT NOT NULL, finished TEXT,
    status TEXT NOT NULL, parameters TEXT, summary TEXT);
CREATE TABLE IF NOT EXISTS reader_sessions (
    session_id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, created TEXT NOT NULL, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, actor TEXT, action TEXT NOT NULL,
    target TEXT, details TEXT);
CREATE TABLE IF NOT EXISTS provenance (
    id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, created TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tables (
    name TEXT PRIMARY KEY, path TEXT NOT NULL, rows INTEGER, columns INTEGER, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS session_cases (
    session_id TEXT NOT NULL, reader TEXT NOT NULL, case_id TEXT NOT NULL, position INTEGER NOT NULL,
    status TEXT NOT NULL, first_started TEXT, opened_at REAL, finished TEXT, duration_s REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, reader, case_id));
CREATE TABLE IF NOT EXISTS session_versions (
    session_id TEXT NOT NULL, reader TEXT NOT NULL, case_id TEXT NOT NULL, version INTEGER NOT NULL,
    path TEXT NOT NULL, sha256 TEXT NOT NULL, saved TEXT NOT NULL, source TEXT NOT NULL,
    duration_s REAL, PRIMARY KEY (session_id, reader, case_id, version));
"""


class StudyStore:
    """A study folder on disk.  Open an existing one with ``StudyStore(path)``."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        if not (self.root / MANIFEST_NAME).is_file():
            raise InputError(f"{self.root}: not a study folder (no {MANIFEST_NAME}); create one with 'nacresponse import'")
        self._cohort: Cohort | None = None
        self._init_catalogue()

    # ---- creation -------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, rows: list[dict[str, Any]],
               clinical: dict[str, dict[str, Any]] | None = None) -> StudyStore:
        """Write manifest (+ clinical table) into ``root`` and initialise the catalogue."""
        root = Path(root)
        if (root / MANIFEST_NAME).exists():
            raise InputError(f"{root}: already holds a study ({MANIFEST_NAME}); choose an empty folder")
        root.mkdir(parents=True, exist_ok=True)
        write_manifest(rows, root / MANIFEST_NAME)
        if clinical:
            write_clinical(clinical, root / CLINICAL_NAME)
        return cls(root)

    # ---- cohort ---------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def clinical_path(self) -> Path:
        return self.root / CLINICAL_NAME

    @property
    def cohort(self) -> Cohort:
        if self._cohort is None:
            rows = read_manifest_rows(self.manifest_path)
            clinical = read_clinical(self.clinical_path) if self.clinical_path.exists() else {}
            self._cohort = cohort_from_rows(rows, clinical)
        return self._cohort

    def refresh(self) -> None:
        """Forget the cached cohort: the next access re-reads manifest and clinical table."""
        self._cohort = None

    def path(self, relative: str | Path) -> Path:
        """Absolute path of a manifest path (relative to the study folder).

        A relative path must stay inside the study folder (no ``..`` escape, no symlink out);
        absolute paths are files referenced in place by ``import --no-copy``.
        """
        p = Path(relative)
        if p.is_absolute():
            return p
        full = self.root / p
        if not within(self.root, full):
            raise InputError(f"{self.manifest_path}: path {str(relative)!r} leads outside the study folder; refused")
        return full

    def add_manifest_rows(self, new_rows: list[dict[str, Any]]) -> None:
        """Append rows (e.g. a new segmentation) under a file lock; the rewrite is atomic."""
        with self._lock("manifest"):
            rows = read_manifest_rows(self.manifest_path)
            keys = {(r["patient_id"], r["timepoint"], r["path"]) for r in rows}
            for r in new_rows:
                if (r["patient_id"], r["timepoint"], r["path"]) in keys:
                    raise ManifestError(f"{self.manifest_path}: {r['path']} is already listed for "
                                        f"{r['patient_id']}/{r['timepoint']}")
            write_manifest(rows + list(new_rows), self.manifest_path)
        self._cohort = None

    # ---- result tables --------------------------------------------------------------------
    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    def work_dir(self, stage: str) -> Path:
        """Per-case runner results of ``stage`` (``<digest>.json``; safe to delete, then recomputed)."""
        return self._stage_dir("work", stage)

    def cache_dir(self, stage: str) -> Path:
        """Per-case arrays of ``stage`` computed outside the runner (safe to delete, then recomputed)."""
        return self._stage_dir("cache", stage)

    def _stage_dir(self, kind: str, stage: str) -> Path:
        if not stage or any(part in ("", ".", "..") for part in Path(stage).parts) or Path(stage).is_absolute():
            raise InputError(f"{stage!r} is not a stage name (folders under {self.root / kind})")
        return self.root / kind / stage

    def table_path(self, name: str) -> Path:
        return self.tables_dir / f"{name}.parquet"

    def has_table(self, name: str) -> bool:
        return self.table_path(name).is_file()

    def write_table(self, name: str, frame, provenance: dict[str, Any]) -> Path:
        """Write a pandas DataFrame as Parquet with its provenance embedded and catalogued."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[PROVENANCE_KEY] = strict_json(provenance, default=str).encode()
        table = table.replace_schema_metadata(meta)
        path = self.table_path(name)
        atomic_write_with(path, lambda tmp: pq.write_table(table, str(tmp)))
        with self.catalogue() as db:
            db.execute("INSERT OR REPLACE INTO tables VALUES (?,?,?,?,?)",
                       (name, str(path.relative_to(self.root)), frame.shape[0], frame.shape[1], now_iso()))
            db.execute("INSERT INTO provenance (target, created, record) VALUES (?,?,?)",
                       (f"table:{name}", now_iso(), strict_json(provenance, default=str)))
        return path

    def write_tables(self, frames: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Path]:
        """Write tables that belong together (one result unit, e.g. ``mc_images`` + ``mc_detections``).

        Each file is replaced atomically, but a kill can fall between two of them; so every table
        of the unit carries the same ``unit`` id in its provenance and :meth:`check_together`
        refuses a set that a killed run left half rewritten.
        """
        prov = {**provenance, "unit": uuid.uuid4().hex, "unit_tables": sorted(frames)}
        return {name: self.write_table(name, frame, prov) for name, frame in frames.items()}

    def together(self, names: list[str] | tuple[str, ...]) -> bool:
        """True when every table exists and all were written by one :meth:`write_tables` call."""
        if not all(self.has_table(n) for n in names):
            return False
        units = {self.table_provenance(n).get("unit") for n in names}
        return len(units) == 1 and None not in units

    def check_together(self, names: list[str] | tuple[str, ...], step: str) -> None:
        """InputError naming the tables when they do not form one complete result unit."""
        missing = [n for n in names if not self.has_table(n)]
        if missing:
            raise InputError(f"{self.tables_dir}: table(s) {missing} not found (run '{step}' first)")
        if not self.together(names):
            raise InputError(f"{self.tables_dir}: tables {list(names)} were not written by the same run "
                             f"(an interrupted '{step}'?); rerun '{step}'")

    def merged(self, name: str, frame, keys: list[str], replaced=None):
        """``frame`` plus the stored rows of table ``name`` that this run did not redo.

        A run over a subset (some patients, readers, timepoints or images) must not narrow the
        study table: stored rows are dropped only when their ``keys`` tuple is in ``replaced``
        (default: the keys present in ``frame``), i.e. when this run planned that case, whether it
        succeeded now or failed.  Keys are compared as strings.
        """
        import pandas as pd

        if not self.has_table(name):
            return frame.reset_index(drop=True)
        old = self.read_table(name)
        if old.empty or not all(k in old.columns for k in keys):
            return frame.reset_index(drop=True)
        if replaced is None:
            replaced = frame[keys].astype(str).itertuples(index=False, name=None)
        replaced = {tuple(str(v) for v in key) for key in replaced}
        keep = [key not in replaced for key in old[keys].astype(str).itertuples(index=False, name=None)]
        parts = [p for p in (old[keep], frame) if len(p)]
        return pd.concat(parts, ignore_index=True) if parts else frame.reset_index(drop=True)

    def read_table(self, name: str):
        import pandas as pd

        path = self.table_path(name)
        if not path.is_file():
            raise InputError(f"{path}: result table {name!r} not found (run the step that makes it first)")
        return pd.read_parquet(path)

    def table_provenance(self, name: str) -> dict[str, Any]:
        import pyarrow.parquet as pq

        meta = pq.read_schema(self.table_path(name)).metadata or {}
        return read_json(meta.get(PROVENANCE_KEY, b"{}"))

    # ---- catalogue ------------------------------------------------------------------------
    @property
    def catalogue_path(self) -> Path:
        return self.root / CATALOGUE_NAME

    def _init_catalogue(self) -> None:
        with self.catalogue() as db:
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def catalogue(self):
        """A SQLite connection in a transaction (committed on success, rolled back on error)."""
        db = sqlite3.connect(self.catalogue_path, timeout=60)
        try:
            with db:
                yield db
        finally:
            db.close()

    def audit(self, action: str, *, actor: str | None = None, target: str | None = None,
              details: dict[str, Any] | None = None, db: sqlite3.Connection | None = None) -> None:
        """Append to the audit log; inside the caller's transaction when ``db`` is given (so the
        entry commits or rolls back with the change it records)."""
        row = (now_iso(), actor, action, target, strict_json(details or {}, default=str))
        sql = "INSERT INTO audit_log (time, actor, action, target, details) VALUES (?,?,?,?,?)"
        if db is not None:
            db.execute(sql, row)
            return
        with self.catalogue() as own:
            own.execute(sql, row)

    def audit_log(self) -> list[dict[str, Any]]:
        with self.catalogue() as db:
            cur = db.execute("SELECT time, actor, action, target, details FROM audit_log ORDER BY id")
            return [dict(zip(("time", "actor", "action", "target", "details"), r)) for r in cur]

    def start_run(self, step: str, parameters: dict[str, Any] | None = None) -> str:
        run_id = f"{step}-{now_iso().replace(':', '')}-{uuid.uuid4().hex[:6]}"
        with self.catalogue() as db:
            db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?)",
                       (run_id, step, now_iso(), None, "running", strict_json(parameters or {}, default=str), None))
        return run_id

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
        with self.catalogue() as db:
            db.execute("UPDATE runs SET finished=?, status=?, summary=? WHERE run_id=?",
                       (now_iso(), status, strict_json(summary or {}, default=str), run_id))

    @contextlib.contextmanager
    def recorded_run(self, step: str, parameters: dict[str, Any] | None = None, *, record: bool = True):
        """A step's row in the runs table for as long as it runs, so none stays ``running``.

        The body ends it with ``run.finish(status, summary)``; leaving by an exception records
        ``cancelled`` (a cancel or Ctrl-C) or ``failed`` with the error.  ``record=False``: no row
        (``run.run_id`` is None).
        """
        run = _Run(self, self.start_run(step, parameters) if record else None)
        try:
            yield run
        except (CancelledError, KeyboardInterrupt):
            run.finish("cancelled")
            raise
        except BaseException as exc:
            run.finish("failed", {"error": f"{type(exc).__name__}: {exc}"})
            raise
        run.finish("done")  # a body that did not say: it returned normally

    def runs(self) -> list[dict[str, Any]]:
        with self.catalogue() as db:
            cur = db.execute("SELECT run_id, step, started, finished, status, parameters, summary FROM runs")
            cols = ("run_id", "step", "started", "finished", "status", "parameters", "summary")
            return [dict(zip(cols, r)) for r in cur]

    def _lock(self, name: str):
        return exclusive_lock(self.root / f".{name}.lock")


class _Run:
    """One row of the runs table (``StudyStore.recorded_run``); finishing it twice keeps the first."""

    def __init__(self, store: StudyStore, run_id: str | None):
        self.store, self.run_id, self.finished = store, run_id, False

    def finish(self, status: str, summary: dict[str, Any] | None = None) -> None:
        if self.run_id is not None and not self.finished:
            self.store.finish_run(self.run_id, status, summary)
        self.finished = True
