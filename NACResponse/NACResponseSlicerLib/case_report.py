"""Case report from the Prediction panel (Slicer-free, Qt-free): the ``nacresponse report case``
command the panel runs in the background, and the page it writes, which the panel then opens."""

from __future__ import annotations

from pathlib import Path

from . import cli_calls


class CaseReportLogic:
    def caseReportJob(self, patientId: str, pdf: bool = False) -> tuple[list[str], Path]:
        """(CLI arguments, the HTML page they write: ``<study>/reports/cases/<patient>.html``)."""
        from NACResponseLib.reporting.case import default_path

        store = self._requireStore()
        page = default_path(store, patientId)
        return cli_calls.case_report(store.root, patientId, page, pdf=pdf), page
