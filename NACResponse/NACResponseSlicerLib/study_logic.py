"""Study panel logic: open a study folder (or import selected series of Slicer's DICOM database),
list patients and images, load two timepoints side by side.  No widgets: the self-test and CI drive it."""

from __future__ import annotations

import slicer


class StudyLogic:
    def __init__(self, context) -> None:
        self.context = context

    def openStudy(self, folder):
        return self.context.open(folder)

    def patientIds(self) -> list[str]:
        return sorted(self.context.requireStore().cohort.patients)

    def imageKeys(self, patientId: str) -> list[str]:
        patient = self.context.requireStore().cohort[patientId]
        return sorted({image.key for tp in patient.timepoints.values() for image in tp.images})

    def studySummary(self) -> str:
        cohort = self.context.requireStore().cohort
        return (f"{len(cohort)} patients; timepoints {', '.join(cohort.timepoint_names())}; "
                f"readers {', '.join(cohort.readers()) or 'none'}.")

    def loadTimepoints(self, patientId: str, timepointA: str, timepointB: str, imageKey: str):
        from .study_view import loadTimepointImage, showSideBySide

        store = self.context.requireStore()
        patient = store.cohort[patientId]
        nodes = []
        for timepoint in (timepointA, timepointB):
            if timepoint in patient.timepoints and patient.timepoints[timepoint].has_image(imageKey):
                nodes.append(loadTimepointImage(store, patientId, timepoint, imageKey))
            else:
                nodes.append(None)
        if nodes == [None, None]:
            raise ValueError(f"{patientId} has no {imageKey} image at {timepointA} or {timepointB}")
        showSideBySide(*nodes)
        return nodes[0], nodes[1]

    @staticmethod
    def stageDicomSeries(seriesUIDs, database=None) -> str:
        """A new temporary folder with the files of the given series of Slicer's DICOM database (hard
        links or copies), for 'import --dicom'.  Only these series: the rest of the database stays out
        of the study.  The caller removes it with :meth:`removeStaging` once the import has finished."""
        import tempfile

        from .staging import stage_files

        database = database if database is not None else slicer.dicomDatabase
        if database is None or not database.isOpen:
            raise ValueError("Slicer's DICOM database is not open (use the DICOM module to import data first).")
        if not seriesUIDs:
            raise ValueError("Select the series to import in the DICOM module first.")
        files = [f for series in seriesUIDs for f in database.filesForSeries(series)]
        if not files:
            raise ValueError("The selected series have no files in Slicer's DICOM database.")
        staging = tempfile.mkdtemp(prefix="nacresponse-dicom-")
        try:
            return stage_files(files, staging)
        except Exception:
            StudyLogic.removeStaging(staging)
            raise

    @staticmethod
    def removeStaging(staging: str) -> None:
        """Delete a staging folder (links or copies only: the DICOM database keeps its files)."""
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
