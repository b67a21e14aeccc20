"""Reader sessions under concurrent saves, attribution, tokens, and blinding of agreement / ICC."""

from __future__ import annotations

import getpass
import json
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import InputError
from NACResponseLib.provenance import sha256_file
from NACResponseLib.readers.cohort import run_agreement
from NACResponseLib.readers.sessions import ReaderSession, create_session
from NACResponseLib.study.store import StudyStore

NACRESPONSE = str(Path(__file__).resolve().parents[1] / "NACResponse")


def _mask(store, cid, n_voxels):
    """A mask of exactly ``n_voxels`` voxels on the case's reference grid."""
    pid, tp = cid.split("/")
    ref = sitk.ReadImage(str(store.path(store.cohort[pid].timepoint(tp).image("dce_early").path)))
    array = np.zeros(tuple(reversed(ref.GetSize())), np.uint8)
    array.flat[:n_voxels] = 1
    return array


def _consistent(session, reader, cid):
    """Files on disk match the catalogue, and the current mask is the latest catalogued version."""
    versions = session.versions(reader, cid)
    folder = session.folder / reader / "versions"
    assert len(list(folder.glob("*.nii.gz"))) == len(versions)
    current = session.store.path(session._current_rel(reader, cid))
    assert sha256_file(current) == versions[-1]["sha256"]
    return versions


def test_save_with_a_stale_cohort_succeeds_and_keeps_current_equal_latest(copy_study):
    """The probe: another process added the manifest row after this one cached the cohort."""
    session = create_session(copy_study, "s", ["A"], patients=["P001"], timepoints=["pre"])
    cid = session.spec.cases[0]
    _ = session.store.cohort  # cached before the other process saves
    other = textwrap.dedent(f"""
        import numpy as np
        from NACResponseLib.study.store import StudyStore
        from NACResponseLib.readers.sessions import ReaderSession
        store = StudyStore({str(copy_study.root)!r})
        s = ReaderSession(store, "s")
        s.save("A", {cid!r}, np.load({str(copy_study.root / 'm16.npy')!r}))
    """)
    np.save(copy_study.root / "m16.npy", _mask(copy_study, cid, 16))
    subprocess.run([sys.executable, "-c", other], check=True, timeout=120, env={"PYTHONPATH": NACRESPONSE})
    session.save("A", cid, _mask(copy_study, cid, 900))
    versions = _consistent(session, "A", cid)
    assert [v["version"] for v in versions] == [1, 2]
    current = sitk.GetArrayFromImage(sitk.ReadImage(str(session.store.path(session._current_rel("A", cid)))))
    assert int(current.sum()) == 900


def test_same_reader_saving_in_two_processes(copy_study):
    session = create_session(copy_study, "s", ["A"], patients=["P001"], timepoints=["pre"])
    cid = session.spec.cases[0]
    for n in (16, 900):
        np.save(copy_study.root / f"m{n}.npy", _mask(copy_study, cid, n))
    worker = textwrap.dedent("""
        import sys
        import numpy as np
        from NACResponseLib.study.store import StudyStore
        from NACResponseLib.readers.sessions import ReaderSession
        root, n, cid = sys.argv[1], sys.argv[2], sys.argv[3]
        store = StudyStore(root)
        s = ReaderSession(store, "s")
        _ = store.cohort  # cached once, as a long-running process (Slicer) would
        ok = 0
        for _ in range(5):
            s.save("A", cid, np.load(f"{root}/m{n}.npy"))
            ok += 1
        print(ok)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", worker, str(copy_study.root), n, cid], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={"PYTHONPATH": NACRESPONSE})
             for n in ("16", "900")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    assert [o[0].strip() for o in outs] == ["5", "5"]
    versions = _consistent(ReaderSession(StudyStore(copy_study.root), "s"), "A", cid)
    assert len(versions) == 10


def test_every_save_records_os_user_and_host(copy_study):
    session = create_session(copy_study, "s", ["A"], patients=["P001"], timepoints=["pre"])
    cid = session.spec.cases[0]
    session.save("A", cid, _mask(copy_study, cid, 20))
    saves = [r for r in copy_study.audit_log() if r["action"] == "session.save"]
    details = json.loads(saves[-1]["details"])
    assert saves[-1]["actor"] == "A"
    assert details["os_user"] == getpass.getuser() and details["host"] == platform.node()


def test_token_is_required_to_save(copy_study):
    session = create_session(copy_study, "s", ["A", "B"], patients=["P001"], timepoints=["pre"], tokens=True)
    tokens = session.issued_tokens
    assert set(tokens) == {"A", "B"} and tokens["A"] != tokens["B"]
    spec_text = json.dumps(session.spec.__dict__)
    assert tokens["A"] not in spec_text  # only hashes are stored
    cid = session.spec.cases[0]
    reopened = ReaderSession(copy_study, "s")
    with pytest.raises(InputError, match="requires reader 'A''s token"):
        reopened.save("A", cid, _mask(copy_study, cid, 20))
    with pytest.raises(InputError, match="wrong or missing token for reader 'A'"):
        reopened.authenticate("A", tokens["B"])
    reopened.authenticate("A", tokens["A"])
    reopened.save("A", cid, _mask(copy_study, cid, 20))
    with pytest.raises(InputError, match="requires reader 'B''s token"):
        reopened.save("B", cid, _mask(copy_study, cid, 20))
    assert len(reopened.versions("A", cid)) == 1 and not reopened.versions("B", cid)


def test_token_cli(copy_study, tmp_path):
    from NACResponseLib.cli import main

    tokens = tmp_path / "tokens.csv"
    root = str(copy_study.root)
    assert main(["session", "create", root, "--name", "s", "--readers", "A", "--patients", "P001",
                 "--timepoints", "pre", "--tokens", str(tokens)]) == 0
    assert oct(tokens.stat().st_mode & 0o777) == "0o600"
    token = tokens.read_text().splitlines()[1].split(",")[1]
    mask = tmp_path / "m.nii.gz"
    ref = sitk.ReadImage(str(copy_study.path(copy_study.cohort["P001"].timepoint("pre").image("dce_early").path)))
    m = sitk.GetImageFromArray(_mask(copy_study, "P001/pre", 30))
    m.CopyInformation(ref)
    sitk.WriteImage(m, str(mask))
    save = ["session", "save", root, "--name", "s", "--reader", "A", "--case", "P001/pre", "--mask", str(mask)]
    assert main(save) == 2
    assert main([*save, "--token", "nope"]) == 2
    assert main([*save, "--token", token]) == 0


def _half_done_session(store):
    session = create_session(store, "blind", ["A1", "A2"], patients=["P001", "P002"], timepoints=["pre"])
    for reader in ("A1", "A2"):
        cid = session.spec.orders[reader][0]
        session.save(reader, cid, _mask(store, cid, 400))
    return session  # each reader has one of two cases done


def test_agreement_over_an_unfinished_session_is_refused_without_session_flag(copy_study):
    _half_done_session(copy_study)
    with pytest.raises(InputError, match="session 'blind', which is not complete"):
        run_agreement(copy_study, readers=["A1", "A2"], progress_mode="none")
    with pytest.raises(InputError, match="not complete"):
        run_agreement(copy_study, session="blind", progress_mode="none")
    assert not copy_study.has_table("agreement")


def test_icc_over_an_unfinished_session_is_refused(copy_study):
    import pandas as pd

    from NACResponseLib.readers.cohort import run_icc

    session = _half_done_session(copy_study)
    rows = [{"patient_id": c.split("/")[0], "timepoint": "pre", "image": "dce_early", "reader": r,
             "method": "manual", "label": 1, "dce_early__original_firstorder_Mean": float(i)}
            for i, (r, c) in enumerate((r, session.spec.orders[r][0]) for r in ("A1", "A2"))]
    copy_study.write_table("radiomics", pd.DataFrame(rows), {})
    with pytest.raises(InputError, match="icc: uses masks of reader session 'blind'"):
        run_icc(copy_study, readers=["A1", "A2"], progress_mode="none")
