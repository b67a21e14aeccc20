"""Features panel widgets: radiomics and deep features (background), agreement, ICC, tables."""

from __future__ import annotations

import qt
import slicer
from slicer.i18n import tr as _

from .panel_base import Panel


class FeaturesPanel(Panel):
    def connect(self) -> None:
        self.connectButtons([(self.ui.radiomicsCaseButton, self.onRadiomicsCase),
                             (self.ui.radiomicsStudyButton, self.onRadiomicsStudy),
                             (self.ui.deepFeaturesButton, self.onDeepFeatures),
                             (self.ui.agreementButton, self.onAgreement), (self.ui.iccButton, self.onIcc),
                             (self.ui.showTableButton, self.onShowTable),
                             (self.ui.exportTableButton, self.onExportTable)])

    def onRadiomicsCase(self) -> None:
        arguments = self.logic.radiomicsArguments(self.params.settings.jobs, [self.patient()])
        self.tasks.run(arguments, _("Radiomics"), needs=("core", "radiomics"),
                       onSuccess=lambda: self._showTable("radiomics_wide"))

    def onRadiomicsStudy(self) -> None:
        arguments = self.logic.radiomicsArguments(self.params.settings.jobs)
        self.tasks.run(arguments, _("Radiomics"), needs=("core", "radiomics"),
                       onSuccess=lambda: self._showTable("radiomics_wide"))

    def onDeepFeatures(self) -> None:
        p = self.params
        arguments = self.logic.deepFeaturesArguments(p.deepWeightsFile, p.segModelFolder)
        table = "deep_resnet50" if "--weights" in arguments else "deep_bottleneck"
        self.tasks.run(arguments, _("Deep features"), needs=("core", "deep"),
                       onSuccess=lambda: self._showTable(table))

    def onAgreement(self) -> None:
        self.tasks.run(self.logic.agreementArguments(self.params.sessionName), _("Reader agreement"),
                       onSuccess=lambda: self._showTable("agreement_summary"))

    def onIcc(self) -> None:
        p = self.params
        arguments = self.logic.iccArguments(p.settings.iccThreshold, p.sessionName)
        self.tasks.run(arguments, _("ICC filter"), onSuccess=lambda: self._showTable("icc_whitelist"))

    def onShowTable(self) -> None:
        self.tasks.ensure(("core",))
        self._showTable(self.ui.featureTableComboBox.currentText)

    def onExportTable(self) -> None:
        from .table_export import FILE_FILTER

        self.tasks.ensure(("core",))
        name = self.ui.featureTableComboBox.currentText
        if not name:
            raise ValueError(_("Choose a table."))
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Export table"), f"{name}.csv", FILE_FILTER)
        if not path:
            return
        if str(path).lower().endswith(".xlsx"):
            self.tasks.ensure(("xlsx",))
        written = self.logic.exportResultTable(name, path)
        slicer.util.showStatusMessage(_("Table {name} saved to {path}").format(name=name, path=written), 5000)

    def _showTable(self, name) -> None:
        tables = self.logic.context.resultTables()
        self.ui.featureTableComboBox.clear()
        self.ui.featureTableComboBox.addItems(tables)
        self.ui.featureTableComboBox.setCurrentText(name)
        if name in tables:
            self.logic.showResultTable(name, self.params.patientId or None)
        else:
            slicer.util.warningDisplay(_("The study has no table {name}.").format(name=name))
