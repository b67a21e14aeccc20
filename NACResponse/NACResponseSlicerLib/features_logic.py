"""Features panel logic: radiomics and deep features in the background, reader agreement and ICC, and any
study table shown as a table node (wide feature tables one patient at a time) or exported as CSV/XLSX."""

from __future__ import annotations

from . import cli_calls
from .context import given_path


class FeaturesLogic:
    def __init__(self, context) -> None:
        self.context = context

    def radiomicsArguments(self, jobs: int, patients=None):
        return cli_calls.radiomics(self.context.requireStore().root, jobs, patients)

    def deepFeaturesArguments(self, weightsFile, bundleFolder):
        """ResNet-50 (with Grad-CAM maps for the Prediction panel) and/or bottleneck features."""
        weights, bundle = given_path(weightsFile), given_path(bundleFolder)
        if weights is None and bundle is None:
            raise ValueError("Set ResNet-50 weights or a segmentation model bundle for deep features.")
        return cli_calls.deep_features(self.context.requireStore().root, weights, bundle, gradcam=weights is not None)

    def agreementArguments(self, sessionName: str = ""):
        return cli_calls.agreement(self.context.requireStore().root, sessionName or None)

    def iccArguments(self, threshold: float, sessionName: str = ""):
        return cli_calls.icc(self.context.requireStore().root, threshold, session=sessionName or None)

    def showResultTable(self, name: str, patientId: str | None = None):
        """Show a study table; wide feature tables are shown for one patient, one row per feature."""
        from .mrml_tables import namedNode, showTable, tableNodeFromDataFrame
        from .table_data import case_feature_rows

        if not name:
            raise ValueError("Choose a table.")
        frame = self.context.requireStore().read_table(name)
        title = name
        if patientId and "patient_id" in frame.columns and frame.shape[1] > 50:
            frame = case_feature_rows(frame, patientId)
            title = f"{name} {patientId}"
        tableNode = tableNodeFromDataFrame(frame, title, namedNode("vtkMRMLTableNode", title), maxRows=5000)
        showTable(tableNode)
        return tableNode

    def exportResultTable(self, name: str, path: str, selectedFilter: str = ""):
        """Write a study table to the file a Save dialog chose (CSV or XLSX); returns the path written."""
        from .table_export import export_result_table

        return export_result_table(self.context.requireStore(), name, path, selectedFilter)
