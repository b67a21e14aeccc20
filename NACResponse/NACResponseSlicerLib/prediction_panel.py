"""Prediction panel widgets: predict the current patient, Grad-CAM overlays, cohort curves, and the
case report (written in the background, then opened in the system browser)."""

from __future__ import annotations

import qt
from slicer.i18n import tr as _

from .panel_base import Panel


class PredictionPanel(Panel):
    def connect(self) -> None:
        self.connectButtons([(self.ui.predictButton, self.onPredict),
                             (self.ui.showEvaluationButton, self.onShowEvaluation),
                             (self.ui.caseReportButton, self.onCaseReport)])

    def onPredict(self) -> None:
        p = self.params
        patientId = self.patient()
        self.tasks.ensure(("core", "stats"))
        prediction = self.logic.predictCase(p.modelFile, patientId)
        overlays = self.logic.showGradcam(patientId, [p.timepointA, p.timepointB])
        text = self.logic.showPrediction(prediction, patientId)  # after Grad-CAM: its layout keeps the table
        if overlays:
            text += " " + _("Grad-CAM: {names}.").format(names=", ".join(o.GetName() for o in overlays))
        self.ui.predictionResultLabel.text = text

    def onShowEvaluation(self) -> None:
        self.tasks.ensure(("core", "stats"))
        self.ui.predictionResultLabel.text = self.logic.showEvaluationPlots(self.params.modelFile)["text"]

    def onCaseReport(self) -> None:
        arguments, page = self.logic.caseReportJob(self.patient(), self.params.modelFile)
        self.tasks.run(arguments, _("Case report"), needs=("core", "stats"),
                       onSuccess=lambda: qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(page))))
