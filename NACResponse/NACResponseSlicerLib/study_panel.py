"""Study panel widgets: open a study folder (or import the selected series of Slicer's DICOM
database), choose patient and timepoints, load two timepoints side by side."""

from __future__ import annotations

import logging
import os
import pathlib

import qt
import slicer
from slicer.i18n import tr as _

from . import cli_calls
from .panel_base import Panel


def selectedDicomSeries() -> list[str]:
    """Series instance UIDs selected in the DICOM module's browser (either browser view)."""
    dicom = getattr(slicer.modules, "DICOMInstance", None)
    browser = getattr(dicom, "browserWidget", None)
    if browser is None:
        return []
    if getattr(browser, "useVisualDICOMBrowser", False):
        return list(browser.dicomVisualBrowser.patientView().selectedSeriesInstanceUIDs())
    import ctk

    return list(browser.dicomBrowser.selectedItems(ctk.ctkDICOMModel.SeriesType))


class StudyPanel(Panel):
    def connect(self) -> None:
        self.connectButtons([(self.ui.openStudyButton, self.onOpenStudy),
                             (self.ui.importDicomButton, self.onImportDicom),
                             (self.ui.loadTimepointsButton, self.onLoadTimepoints)])
        self.ui.patientComboBox.connect("currentTextChanged(QString)", self.onPatientChanged)
        self.ui.imageKeyComboBox.connect("currentTextChanged(QString)", self.onImageKeyChanged)

    @staticmethod
    def fillCombo(combo, items, current=None) -> None:
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(items)
        if current in items:
            combo.setCurrentText(current)
        combo.blockSignals(False)

    def onOpenStudy(self) -> None:
        self.tasks.ensure(("core",))  # Slicer ships none of pandas, pyarrow, yaml, jsonschema
        store = self.logic.openStudy(self.params.studyFolder)
        patients = self.logic.patientIds()
        current = self.params.patientId if self.params.patientId in patients else patients[0]
        self.fillCombo(self.ui.patientComboBox, patients, current)
        self.onPatientChanged(current)
        self.ui.studySummaryLabel.text = self.logic.studySummary()
        self.ui.loadTimepointsButton.enabled = True
        self.fillCombo(self.ui.featureTableComboBox, self.logic.context.resultTables())
        logging.info(f"NACResponse: opened {store.root}")

    def onPatientChanged(self, patientId) -> None:
        if not patientId or self.logic.context.store is None:
            return
        self.params.patientId = patientId
        keys = self.logic.imageKeys(patientId)
        self.fillCombo(self.ui.imageKeyComboBox, [k for k in keys if not k.startswith("mg_")], self.params.imageKey)
        self.onImageKeyChanged(self.ui.imageKeyComboBox.currentText)
        self.fillCombo(self.ui.mcViewComboBox, [k for k in keys if k.startswith("mg_")])

    def onImageKeyChanged(self, imageKey) -> None:
        if imageKey:
            self.params.imageKey = imageKey

    def onLoadTimepoints(self) -> None:
        p = self.params
        self.logic.loadTimepoints(self.patient(), p.timepointA, p.timepointB, p.imageKey)

    def onImportDicom(self) -> None:
        series = selectedDicomSeries()
        if not series:
            raise ValueError(_("Select the series to import in the DICOM module first."))
        destination = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(),
                                                          _("Choose an empty folder for the new study"))
        if not destination:
            return
        studyDir = os.path.join(destination, "study")
        staging = self.logic.stageDicomSeries(series)

        def opened():
            self.params.studyFolder = pathlib.Path(studyDir)
            self.onOpenStudy()

        try:
            self.tasks.run(cli_calls.import_dicom(staging, studyDir), _("Import DICOM"), onSuccess=opened,
                           onFinished=lambda result: self.logic.removeStaging(staging))
        except Exception:
            self.logic.removeStaging(staging)
            raise
