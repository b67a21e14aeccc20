"""Microcalcification panel widgets: detect, edit, extent and pre/post comparison (background)."""

from __future__ import annotations

from slicer.i18n import tr as _

from .panel_base import Panel


class McPanel(Panel):
    def connect(self) -> None:
        self.connectButtons([(self.ui.mcDetectButton, self.onMcDetect), (self.ui.mcExtentButton, self.onMcExtent),
                             (self.ui.mcCompareButton, self.onMcCompare)])

    def _mcCase(self):
        p = self.params
        image = self.ui.mcViewComboBox.currentText
        if not image:
            raise ValueError(_("This patient has no mammogram."))
        return self.patient(), image, [p.timepointA, p.timepointB]

    def _runExtentAndShow(self, patientId, image, timepoints) -> None:
        def show():
            self.ui.mcResultLabel.text = self.logic.showMcResults(patientId, image, timepoints)

        self.tasks.run(self.logic.mcExtentArguments(), _("Microcalcification extent"), onSuccess=show)

    def onMcDetect(self) -> None:
        patientId, image, timepoints = self._mcCase()
        self.tasks.run(self.logic.mcDetectArguments(timepoints), _("Microcalcification detection"),
                       onSuccess=lambda: self._runExtentAndShow(patientId, image, timepoints))

    def onMcExtent(self) -> None:
        patientId, image, timepoints = self._mcCase()
        self.tasks.ensure(("core",))
        self.logic.saveMcEdits(patientId, image, timepoints, self.params.readerId)
        self._runExtentAndShow(patientId, image, timepoints)

    def onMcCompare(self) -> None:
        patientId, image, _timepoints = self._mcCase()
        p = self.params

        def show():
            self.ui.mcResultLabel.text = self.logic.mcComparisonText(patientId, image)

        self.tasks.run(self.logic.mcCompareArguments(p.timepointA, p.timepointB), _("Microcalcification comparison"),
                       onSuccess=show)
