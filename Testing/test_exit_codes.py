"""Each kind of failure has its own exit code and a one-line message; 1 only means "some cases failed"."""

from __future__ import annotations

import errno
import os

import pytest

from NACResponseLib import cli
from NACResponseLib.cli import main


def _validate(study):
    return ["--progress", "none", "validate", str(study.root)]


@pytest.mark.parametrize(("code", "hint"), [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only"),
                                            (errno.EACCES, "permission denied")])
def test_file_system_errors_exit_3_with_one_line(copy_study, monkeypatch, capsys, code, hint):
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(copy_study.reports_dir / "validation.json"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # every atomic write starts here
    assert main(_validate(copy_study)) == cli.EXIT_FILESYSTEM == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "validation.json" in err[0] and hint in err[0] and "Traceback" not in err[0]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores a read-only folder")
def test_read_only_study_exits_3(copy_study, capsys):
    for folder in (copy_study.root, copy_study.reports_dir):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o555)
    try:
        assert main(_validate(copy_study)) == 3
    finally:
        for folder in (copy_study.root, copy_study.reports_dir):
            folder.chmod(0o755)


def test_damaged_catalogue_exits_4(copy_study, capsys):
    copy_study.catalogue_path.write_bytes(b"this is not a database" * 100)
    assert main(_validate(copy_study)) == cli.EXIT_CATALOGUE == 4
    assert "study catalogue cannot be used" in capsys.readouterr().err


def test_decoding_error_exits_5(tmp_path, capsys):
    from pydicom.uid import generate_uid
    from test_import_validate_cli import _write_dicom_mr

    _write_dicom_mr(tmp_path / "dicom", generate_uid(), generate_uid(), "Ax T2")
    overrides = tmp_path / "overrides.csv"
    overrides.write_bytes("series_uid,role\n1.2.3,t2w\n".encode("utf-16"))
    rc = main(["--progress", "none", "import", "--dicom", str(tmp_path / "dicom"), str(tmp_path / "s"),
               "--overrides", str(overrides)])
    assert rc == cli.EXIT_ENCODING == 5
    assert "not UTF-8 or Latin-1" in capsys.readouterr().err


def test_a_bug_exits_70_with_its_traceback(copy_study, monkeypatch, capsys):
    import NACResponseLib.study.validate as validate

    monkeypatch.setattr(validate, "validate_study", lambda *a, **k: {}["missing"])
    assert main(_validate(copy_study)) == cli.EXIT_INTERNAL == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("nacresponse validate: internal error")


def test_cancel_token_is_wired_into_args_and_nothing_imports_cli():
    import ast
    from pathlib import Path

    root = Path(cli.__file__).parent
    importers = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1] == "cli":
                importers.append(str(path.relative_to(root)))
    assert importers == []
    args = cli.build_parser().parse_args(["validate", "x"])
    assert not hasattr(args, "cancel")  # main() adds it: one token per run
