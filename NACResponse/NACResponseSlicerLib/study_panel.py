"""Study panel: open a study folder (or import Slicer's DICOM database), choose patient and
timepoints, load two timepoints side by side."""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile

import qt
import slicer
from slicer.i18n import tr as _

from . import cli_calls


class StudyLogic:
    def openStudy(self, folder):
        from NACResponseLib.study.store import StudyStore

        if not folder or str(folder) in ("", "."):
            raise ValueError("Choose a study folder (made by 'nacresponse import').")
        self.store = StudyStore(pathlib.Path(folder))
        self.session = None
        return self.store

    def patientIds(self) -> list[str]:
        return sorted(self._requireStore().cohort.patients)

    def imageKeys(self, patientId: str) -> list[str]:
        patient = self._requireStore().cohort[patientId]
        return sorted({image.key for tp in patient.timepoints.values() for image in tp.images})

    def studySummary(self) -> str:
        cohort = self._requireStore().cohort
        return (f"{len(cohort)} patients; timepoints {', '.join(cohort.timepoint_names())}; "
                f"readers {', '.join(cohort.readers()) or 'none'}.")

    def resultTables(self) -> list[str]:
        store = self._requireStore()
        if not store.tables_dir.is_dir():
            return []
        return sorted(p.name[: -len(".parquet")] for p in store.tables_dir.glob("*.parquet"))

    def loadTimepoints(self, patientId: str, timepointA: str, timepointB: str, imageKey: str):
        from .study_view import loadTimepointImage, showSideBySide

        store = self._requireStore()
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

    def stageDicomDatabase(self) -> str:
        """Link (or copy) every file of Slicer's DICOM database into a temporary folder for 'import --dicom'."""
        from .staging import stage_files

        database = slicer.dicomDatabase
        if database is None or not database.isOpen:
            raise ValueError("Slicer's DICOM database is not open (use the DICOM module to import data first).")
        files = [f for patient in database.patients() for study in database.studiesForPatient(patient)
                 for series in database.seriesForStudy(study) for f in database.filesForSeries(series)]
        if not files:
            raise ValueError("Slicer's DICOM database is empty.")
        return stage_files(files, tempfile.mkdtemp(prefix="nacresponse-dicom-"))


class StudyHandlers:
    def connectStudyPanel(self) -> None:
        self._connectButtons([(self.ui.openStudyButton, self.onOpenStudy),
                              (self.ui.importDicomButton, self.onImportDicom),
                              (self.ui.loadTimepointsButton, self.onLoadTimepoints)])
        self.ui.patientComboBox.connect("currentTextChanged(QString)", self.onPatientChanged)
        self.ui.imageKeyComboBox.connect("currentTextChanged(QString)", self.onImageKeyChanged)

    @staticmethod
    def _fillCombo(combo, items, current=None) -> None:
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(items)
        if current in items:
            combo.setCurrentText(current)
        combo.blockSignals(False)

    def onOpenStudy(self) -> None:
        store = self.logic.openStudy(self._parameterNode.studyFolder)
        patients = self.logic.patientIds()
        current = self._parameterNode.patientId if self._parameterNode.patientId in patients else patients[0]
        self._fillCombo(self.ui.patientComboBox, patients, current)
        self.onPatientChanged(current)
        self.ui.studySummaryLabel.text = self.logic.studySummary()
        self.ui.loadTimepointsButton.enabled = True
        self._fillCombo(self.ui.featureTableComboBox, self.logic.resultTables())
        logging.info(f"NACResponse: opened {store.root}")

    def onPatientChanged(self, patientId) -> None:
        if not patientId or self.logic.store is None:
            return
        self._parameterNode.patientId = patientId
        keys = self.logic.imageKeys(patientId)
        self._fillCombo(self.ui.imageKeyComboBox, [k for k in keys if not k.startswith("mg_")],
                        self._parameterNode.imageKey)
        self.onImageKeyChanged(self.ui.imageKeyComboBox.currentText)
        self._fillCombo(self.ui.mcViewComboBox, [k for k in keys if k.startswith("mg_")])

    def onImageKeyChanged(self, imageKey) -> None:
        if imageKey:
            self._parameterNode.imageKey = imageKey

    def onLoadTimepoints(self) -> None:
        p = self._parameterNode
        nodeA, nodeB = self.logic.loadTimepoints(self._patient(), p.timepointA, p.timepointB, p.imageKey)
        self.ui.segmentEditorWidget.setSourceVolumeNode(nodeB or nodeA)

    def onImportDicom(self) -> None:
        destination = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(),
                                                          _("Choose an empty folder for the new study"))
        if not destination:
            return
        studyDir = os.path.join(destination, "study")
        staging = self.logic.stageDicomDatabase()

        def opened():
            self._parameterNode.studyFolder = pathlib.Path(studyDir)
            self.onOpenStudy()

        self._runTask(cli_calls.import_dicom(staging, studyDir), _("Import DICOM"), onSuccess=opened)
