"""Features panel: radiomics and deep features in the background, reader agreement and ICC, and any
study table shown as a table node (wide feature tables one patient at a time)."""

from __future__ import annotations

import slicer
from slicer.i18n import tr as _

from . import cli_calls


def _given(path) -> bool:
    return bool(path) and str(path) not in ("", ".")


class FeaturesLogic:
    def radiomicsArguments(self, jobs: int, patients=None):
        return cli_calls.radiomics(self._requireStore().root, jobs, patients)

    def deepFeaturesArguments(self, weightsFile, bundleFolder):
        """ResNet-50 (with Grad-CAM maps for the Prediction panel) and/or bottleneck features."""
        weights = weightsFile if _given(weightsFile) else None
        bundle = bundleFolder if _given(bundleFolder) else None
        if weights is None and bundle is None:
            raise ValueError("Set ResNet-50 weights or a segmentation model bundle for deep features.")
        return cli_calls.deep_features(self._requireStore().root, weights, bundle, gradcam=weights is not None)

    def agreementArguments(self, sessionName: str = ""):
        return cli_calls.agreement(self._requireStore().root, sessionName or None)

    def iccArguments(self, threshold: float, sessionName: str = ""):
        return cli_calls.icc(self._requireStore().root, threshold, session=sessionName or None)

    def showResultTable(self, name: str, patientId: str | None = None):
        """Show a study table; wide feature tables are shown for one patient, one row per feature."""
        from .mrml_tables import namedNode, showTable, tableNodeFromDataFrame
        from .table_data import case_feature_rows

        if not name:
            raise ValueError("Choose a table.")
        frame = self._requireStore().read_table(name)
        title = name
        if patientId and "patient_id" in frame.columns and frame.shape[1] > 50:
            frame = case_feature_rows(frame, patientId)
            title = f"{name} {patientId}"
        tableNode = tableNodeFromDataFrame(frame, title, namedNode("vtkMRMLTableNode", title), maxRows=5000)
        showTable(tableNode)
        return tableNode


class FeaturesHandlers:
    def connectFeaturesPanel(self) -> None:
        self._connectButtons([(self.ui.radiomicsCaseButton, self.onRadiomicsCase),
                              (self.ui.radiomicsStudyButton, self.onRadiomicsStudy),
                              (self.ui.deepFeaturesButton, self.onDeepFeatures),
                              (self.ui.agreementButton, self.onAgreement), (self.ui.iccButton, self.onIcc),
                              (self.ui.showTableButton, self.onShowTable)])

    def onRadiomicsCase(self) -> None:
        arguments = self.logic.radiomicsArguments(self._parameterNode.settings.jobs, [self._patient()])
        self._runTask(arguments, _("Radiomics"), onSuccess=lambda: self._showTable("radiomics_wide"))

    def onRadiomicsStudy(self) -> None:
        arguments = self.logic.radiomicsArguments(self._parameterNode.settings.jobs)
        self._runTask(arguments, _("Radiomics"), onSuccess=lambda: self._showTable("radiomics_wide"))

    def onDeepFeatures(self) -> None:
        p = self._parameterNode
        arguments = self.logic.deepFeaturesArguments(p.deepWeightsFile, p.segModelFolder)
        table = "deep_resnet50" if "--weights" in arguments else "deep_bottleneck"
        self._runTask(arguments, _("Deep features"), onSuccess=lambda: self._showTable(table))

    def onAgreement(self) -> None:
        self._runTask(self.logic.agreementArguments(self._parameterNode.sessionName), _("Reader agreement"),
                      onSuccess=lambda: self._showTable("agreement_summary"))

    def onIcc(self) -> None:
        p = self._parameterNode
        arguments = self.logic.iccArguments(p.settings.iccThreshold, p.sessionName)
        self._runTask(arguments, _("ICC filter"), onSuccess=lambda: self._showTable("icc_whitelist"))

    def onShowTable(self) -> None:
        self._showTable(self.ui.featureTableComboBox.currentText)

    def _showTable(self, name) -> None:
        tables = self.logic.resultTables()
        self.ui.featureTableComboBox.clear()
        self.ui.featureTableComboBox.addItems(tables)
        self.ui.featureTableComboBox.setCurrentText(name)
        if name in tables:
            self.logic.showResultTable(name, self._parameterNode.patientId or None)
        else:
            slicer.util.warningDisplay(_("The study has no table {name}.").format(name=name))
