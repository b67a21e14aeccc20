"""The study every panel works on, shared by the panels' logic objects (Slicer-free).

One ``StudyContext`` per module logic: the Study panel opens a folder, every other panel's logic
reads the same ``NACResponseLib.study.store.StudyStore`` through it.
"""

from __future__ import annotations

from pathlib import Path


def given_path(value) -> Path | None:
    """A path field of the parameter node, or None when it is unset (empty or ``.``)."""
    if value is None:
        return None
    text = str(value).strip()
    return Path(text) if text and text != "." else None


class StudyContext:
    """The open study folder (a ``StudyStore``), or None before *Open study*."""

    def __init__(self) -> None:
        self.store = None

    def requireStore(self):
        if self.store is None:
            raise ValueError("Open a study folder first (Study section).")
        return self.store

    def open(self, folder):
        from NACResponseLib.study.store import StudyStore

        path = given_path(folder)
        if path is None:
            raise ValueError("Choose a study folder (made by 'nacresponse import').")
        self.store = StudyStore(path)
        return self.store

    def close(self) -> None:
        self.store = None

    def reloadCohort(self):
        """Re-read the manifest after a background command added rows (e.g. new segmentations)."""
        from NACResponseLib.study.store import StudyStore

        self.store = StudyStore(self.requireStore().root)
        return self.store

    def resultTables(self) -> list[str]:
        """Names of the study's tables (``tables/<name>.parquet``)."""
        store = self.requireStore()
        if not store.tables_dir.is_dir():
            return []
        return sorted(p.name[: -len(".parquet")] for p in store.tables_dir.glob("*.parquet"))

    def readTable(self, name: str):
        store = self.requireStore()
        return store.read_table(name) if store.has_table(name) else None
