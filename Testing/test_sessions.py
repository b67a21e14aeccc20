"""Reader sessions: blinding, seeded orders, versions, audit, resume, crash safety, imports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import GeometryMismatchError, InputError
from NACResponseLib.readers.sessions import (
    ReaderSession,
    create_session,
    export_session,
    list_sessions,
    reader_order,
    session_segmentation_sets,
)


def _reference(store, cid):
    pid, tp = cid.split("/")
    return sitk.ReadImage(str(store.path(store.cohort[pid].timepoint(tp).image("dce_early").path)))


def _gt_array(store, cid):
    pid, tp = cid.split("/")
    seg = store.cohort[pid].timepoint(tp).segmentations_by(reader="GT")[0]
    return sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(seg.path))))


@pytest.fixture
def session(copy_study):
    return create_session(copy_study, "s1", ["A", "B"], patients=["P001", "P002", "P003"],
                          timepoints=["pre", "post"], seed=3)


def test_orders_are_seeded_recorded_and_per_reader(session):
    spec = session.spec
    assert len(spec.cases) == 6 and set(spec.orders["A"]) == set(spec.cases)
    assert spec.orders["A"] == reader_order(spec.cases, "A", 3)  # reproducible from the seed
    assert spec.orders["A"] != spec.orders["B"]
    reopened = ReaderSession(session.store, "s1")
    assert reopened.spec.orders == spec.orders
    assert session.next_case("A").case_id == spec.orders["A"][0]
    assert list_sessions(session.store) == ["s1"]
    with pytest.raises(InputError, match="already exists"):
        create_session(session.store, "s1", ["C"])


def test_blinding_and_no_overwrite(session):
    store = session.store
    cid = session.spec.orders["A"][0]
    session.start("A", cid)
    saved = session.save("A", cid, _gt_array(store, cid))
    a_bytes = saved.read_bytes()
    # B sees images only, never A's mask, even for the same case
    b = session.start("B", cid)
    assert b.own_segmentation is None
    assert all("/A/" not in str(p) for p in b.images.values())
    assert "A" not in json.dumps({k: str(v) for k, v in vars(b).items()})
    with pytest.raises(InputError, match="not complete"):
        session_segmentation_sets(session)
    # B saving the same case writes B's own file; A's work is untouched
    session.save("B", cid, np.roll(_gt_array(store, cid), 1, axis=2))
    assert saved.read_bytes() == a_bytes
    with pytest.raises(InputError, match="not one of its readers"):
        session.save("C", cid, _gt_array(store, cid))
    with pytest.raises(InputError, match="not part of the session"):
        session.start("A", "P006/pre")


def test_versions_manifest_and_audit(session):
    store = session.store
    cid = session.spec.orders["A"][1]
    session.start("A", cid)
    v1 = session.save("A", cid, _gt_array(store, cid), finish=False)
    v2 = session.save("A", cid, np.roll(_gt_array(store, cid), 1, axis=1))
    assert v1.exists() and v2.exists() and v1 != v2  # every version kept
    assert [v["version"] for v in session.versions("A", cid)] == [1, 2]
    assert session.own_segmentation("A", cid) == v2
    pid, tp = cid.split("/")
    rows = store.cohort[pid].timepoint(tp).segmentations_by(reader="A")
    assert len(rows) == 1 and rows[0].method == "manual"  # one manifest row: the current mask
    current = sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(rows[0].path))))
    assert np.array_equal(current, sitk.GetArrayFromImage(sitk.ReadImage(str(v2))))
    actions = [(e["actor"], e["action"]) for e in store.audit_log() if (e["target"] or "").startswith("session:s1/")]
    assert actions == [("A", "session.start"), ("A", "session.save"), ("A", "session.save")]
    details = json.loads([e for e in store.audit_log() if e["action"] == "session.save"][-1]["details"])
    assert details["version"] == 2 and details["duration_s"] >= 0
    st = session.status()["A"]
    assert st["done"] == 1 and st["todo"] == 5 and st["duration_s"] >= 0


def test_resume_after_restart_and_orphan_version(session):
    store = session.store
    cid = session.spec.orders["B"][2]
    session.start("B", cid)
    # a new process opens the session: the open case comes first
    again = ReaderSession(store, "s1")
    assert again.next_case("B").case_id == cid and again.next_case("B").status == "open"
    # a crash after writing a version file but before the catalogue row leaves an orphan: skipped
    orphan = store.path(again._version_rel("B", cid, 1))
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"partial")
    path = again.save("B", cid, _gt_array(store, cid))
    assert path.name.endswith("__v002.nii.gz") and orphan.read_bytes() == b"partial"
    with pytest.raises(InputError, match="has not started"):
        again.stop("B", cid)


def test_bad_masks_are_refused(session):
    cid = session.spec.cases[0]
    with pytest.raises(InputError, match="empty"):
        session.save("A", cid, np.zeros_like(_gt_array(session.store, cid)))
    with pytest.raises(GeometryMismatchError):
        session.save("A", cid, np.ones((3, 4, 5), np.uint8))
    assert session.versions("A", cid) == []


def test_existing_readers_conflict_or_adopt(copy_study):
    with pytest.raises(InputError, match="already have manual segmentations"):
        create_session(copy_study, "r", ["R1", "R2"])
    s = create_session(copy_study, "r", ["R1", "R2"], adopt_existing=True, timepoints=["pre"])
    assert s.complete and s.next_case("R1") is None
    sets = session_segmentation_sets(s)
    assert len(sets) == 6 and sets[("P001", "pre")]["R1"].path.endswith("R1__manual.nii.gz")
    with pytest.raises(InputError, match="read-only"):
        s.save("R1", "P001/pre", _gt_array(copy_study, "P001/pre"))


def test_export_after_completion(copy_study, tmp_path):
    s = create_session(copy_study, "x", ["A", "B"], patients=["P004"], timepoints=["pre"])
    for reader in ("A", "B"):
        s.save(reader, "P004/pre", _gt_array(copy_study, "P004/pre"))
    out = export_session(s, tmp_path / "export")
    assert (out / "A" / "P004__pre.nii.gz").is_file() and (out / "B" / "P004__pre.nii.gz").is_file()
    assert "session.save" in (out / "audit.csv").read_text()
    assert json.loads((out / "session.json").read_text())["readers"] == ["A", "B"]
