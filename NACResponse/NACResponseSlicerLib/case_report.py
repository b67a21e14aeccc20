"""Case report from the Prediction panel (Slicer-free, Qt-free): the ``nacresponse report case``
command the panel runs in the background, and the page it writes, which the panel then opens."""

from __future__ import annotations

from pathlib import Path

from . import cli_calls


def case_report_job(store, patient_id: str, models=(), pdf: bool = False) -> tuple[list[str], Path]:
    """(CLI arguments, the HTML page they write: ``<study>/reports/cases/<patient>.html``); ``models``:
    model folders outside the study to include (the panel's chosen one)."""
    from NACResponseLib.reporting.case import default_path

    page = default_path(store, patient_id)
    return cli_calls.case_report(store.root, patient_id, page, pdf=pdf, models=models), page
