"""The embedded default store: one study folder.

::

    <study>/
      manifest.csv        files -> patient / timepoint / role (see manifest.py)
      clinical.csv        clinical variables and outcomes per patient
      images/ ...         imported images and segmentations (paths in the manifest are relative)
      catalogue.sqlite    runs, reader sessions, audit log, provenance
      tables/<name>.parquet   result tables; provenance is embedded in the Parquet metadata too
      reports/ ...        validation report, figures, HTML reports

All file writes are atomic (see atomic.py); the catalogue uses SQLite transactions.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_with
from ..errors import InputError, ManifestError
from ..filelock import exclusive_lock
from ..paths import within
from ..provenance import now_iso
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
        meta[PROVENANCE_KEY] = json.dumps(provenance, default=str).encode()
        table = table.replace_schema_metadata(meta)
        path = self.table_path(name)
        atomic_write_with(path, lambda tmp: pq.write_table(table, str(tmp)))
        with self.catalogue() as db:
            db.execute("INSERT OR REPLACE INTO tables VALUES (?,?,?,?,?)",
                       (name, str(path.relative_to(self.root)), frame.shape[0], frame.shape[1], now_iso()))
            db.execute("INSERT INTO provenance (target, created, record) VALUES (?,?,?)",
                       (f"table:{name}", now_iso(), json.dumps(provenance, default=str)))
        return path

    def read_table(self, name: str):
        import pandas as pd

        path = self.table_path(name)
        if not path.is_file():
            raise InputError(f"{path}: result table {name!r} not found (run the step that makes it first)")
        return pd.read_parquet(path)

    def table_provenance(self, name: str) -> dict[str, Any]:
        import pyarrow.parquet as pq

        meta = pq.read_schema(self.table_path(name)).metadata or {}
        return json.loads(meta.get(PROVENANCE_KEY, b"{}"))

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
              details: dict[str, Any] | None = None) -> None:
        with self.catalogue() as db:
            db.execute("INSERT INTO audit_log (time, actor, action, target, details) VALUES (?,?,?,?,?)",
                       (now_iso(), actor, action, target, json.dumps(details or {}, default=str)))

    def audit_log(self) -> list[dict[str, Any]]:
        with self.catalogue() as db:
            cur = db.execute("SELECT time, actor, action, target, details FROM audit_log ORDER BY id")
            return [dict(zip(("time", "actor", "action", "target", "details"), r)) for r in cur]

    def start_run(self, step: str, parameters: dict[str, Any] | None = None) -> str:
        run_id = f"{step}-{now_iso().replace(':', '')}-{uuid.uuid4().hex[:6]}"
        with self.catalogue() as db:
            db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?)",
                       (run_id, step, now_iso(), None, "running", json.dumps(parameters or {}, default=str), None))
        return run_id

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
        with self.catalogue() as db:
            db.execute("UPDATE runs SET finished=?, status=?, summary=? WHERE run_id=?",
                       (now_iso(), status, json.dumps(summary or {}, default=str), run_id))

    def runs(self) -> list[dict[str, Any]]:
        with self.catalogue() as db:
            cur = db.execute("SELECT run_id, step, started, finished, status, parameters, summary FROM runs")
            cols = ("run_id", "step", "started", "finished", "status", "parameters", "summary")
            return [dict(zip(cols, r)) for r in cur]

    def _lock(self, name: str):
        return exclusive_lock(self.root / f".{name}.lock")
