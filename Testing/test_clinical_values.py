"""Clinical values are range-checked; Excel (BOM) and Latin-1 files are read; extra columns are kept."""

from __future__ import annotations

import pytest

from NACResponseLib.cli import main
from NACResponseLib.errors import ManifestError
from NACResponseLib.study.manifest import read_clinical, write_clinical
from NACResponseLib.study.store import StudyStore
from NACResponseLib.study.validate import validate_study

HEADER = "patient_id,age,ki67,rcb_index,pcr,regimen\n"


@pytest.mark.parametrize(("column", "value"), [("age", "-5"), ("age", "inf"), ("age", "-inf"), ("age", "430"),
                                               ("ki67", "260"), ("ki67", "-1"), ("rcb_index", "-3"),
                                               ("rcb_index", "inf")])
def test_out_of_range_values_name_file_row_and_column(tmp_path, column, value):
    values = {"age": "52", "ki67": "30", "rcb_index": "1.2"} | {column: value}
    path = tmp_path / "clinical.csv"
    path.write_text(HEADER + "P1,48,20,0,1,AC\n" + f"P2,{values['age']},{values['ki67']},{values['rcb_index']},0,AC\n")
    with pytest.raises(ManifestError, match=rf"clinical.csv:3: column '{column}' must (lie in|be a finite)"):
        read_clinical(path)


def test_edge_values_are_accepted(tmp_path):
    path = tmp_path / "clinical.csv"
    path.write_text(HEADER + "P1,0,0,0,1,AC\nP2,120,100,4.8,0,AC\n")
    assert read_clinical(path)["P2"] == {"age": 120.0, "ki67": 100.0, "rcb_index": 4.8, "pcr": 0, "regimen": "AC"}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "latin-1"])
def test_excel_bom_and_latin1_files_are_read(tmp_path, encoding):
    path = tmp_path / "clinical.csv"
    path.write_bytes((HEADER + "P1,48,20,0,1,Épirubicine\n").encode(encoding))
    assert read_clinical(path)["P1"]["regimen"] == "Épirubicine"


def test_bom_manifest_is_read(copy_study):
    text = copy_study.manifest_path.read_text(encoding="utf-8")
    copy_study.manifest_path.write_bytes(text.encode("utf-8-sig"))
    copy_study.refresh()
    assert len(copy_study.cohort) == 6


def test_extra_columns_are_kept_and_warned_about(copy_study):
    clinical = read_clinical(copy_study.clinical_path)
    for pid in clinical:
        clinical[pid]["site"] = "Lyon"
    write_clinical(clinical, copy_study.clinical_path)
    assert "site" in copy_study.clinical_path.read_text().splitlines()[0]
    store = StudyStore(copy_study.root)
    assert store.cohort["P001"].clinical["site"] == "Lyon"
    report = validate_study(store)
    assert any("['site']" in w and "kept" in w for w in report["warnings"])


def test_validate_refuses_out_of_range_clinical_values(copy_study, capsys):
    lines = copy_study.clinical_path.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("ki67")] = "260"
    copy_study.clinical_path.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    assert main(["--progress", "none", "validate", str(copy_study.root)]) == 2
    assert "clinical.csv:2: column 'ki67' must lie in [0, 100], got '260'" in capsys.readouterr().err
