"""A DICOM series with a missing slice is reported and not imported with a stretched spacing."""

from __future__ import annotations

import json

import pytest
from test_import_validate_cli import _write_dicom_mr

from NACResponseLib.errors import InputError
from NACResponseLib.study.dicom_import import check_slice_spacing, import_dicom


@pytest.mark.parametrize(("positions", "problem"), [
    ([0, 2, 4, 6, 8], None),
    ([0, 2.02, 3.98, 6.01, 8], None),  # rounding in the headers
    ([0, 2, 6, 8, 10], "uneven slice spacing: 2 mm between most slices but 4 mm between slices 2 and 3"),
    ([0, 2, 2, 4, 6], "2 slices share a position"),
])
def test_check_slice_spacing(positions, problem):
    if problem is None:
        check_slice_spacing(positions, "s")
    else:
        with pytest.raises(InputError, match=problem):
            check_slice_spacing(positions, "s")


def test_series_with_a_missing_slice_is_reported_not_imported(tmp_path):
    from pydicom.uid import generate_uid

    d = tmp_path / "dicom"
    study = generate_uid()
    _write_dicom_mr(d / "t2", generate_uid(), study, "Ax T2 FSE", n=6, number=2)
    _write_dicom_mr(d / "dce", generate_uid(), study, "Ax VIBRANT", n=6, number=3)
    (d / "t2" / "Ax T2 FSE_3.dcm").unlink()  # the probe: one slice lost
    store, problems = import_dicom(d, tmp_path / "study")
    joined = "\n".join(problems)
    assert "uneven slice spacing: 2 mm between most slices but 4 mm" in joined and "t2" in joined
    keys = {i.key for i in store.cohort["PAT1"].timepoint("pre").images}
    assert "t2w" not in keys and "dce_pre" in keys  # the rest of the folder is imported
    assert any("uneven slice spacing" in p for r in store.audit_log() if r["action"] == "import-dicom"
               for p in json.loads(r["details"])["problems"])
