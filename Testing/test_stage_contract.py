"""The study-level contract's ground: StageResult, result keys, table units and subset merges."""

from __future__ import annotations

import pandas as pd
import pytest

from NACResponseLib.errors import InputError
from NACResponseLib.provenance import result_digest
from NACResponseLib.runner import RunSummary, Task
from NACResponseLib.stage import StageResult
from NACResponseLib.study.store import StudyStore


def test_stage_result_message_and_exit_code():
    ok = StageResult("mc detect", done=3, reused=9, tables=["mc_images", "mc_detections"])
    assert ok.message() == "mc detect: 3 computed, 9 reused, 0 failed; tables mc_images, mc_detections"
    assert ok.exit_code == 0 and ok.total == 12
    bad = StageResult("seg ftv", done=1, failed={"P1/pre": "missing DCE phase(s) ['dce_late']"})
    assert bad.exit_code == 1
    assert bad.message().splitlines() == ["seg ftv: 1 computed, 0 reused, 1 failed; tables unchanged",
                                          "FAILED P1/pre: missing DCE phase(s) ['dce_late']"]
    summary = RunSummary(total=4, computed=1, reused=2, failed=1, failures={"a": "boom"})
    assert StageResult.from_summary("radiomics", summary).as_dict() == {
        "stage": "radiomics", "done": 1, "reused": 2, "failed": {"a": "boom"}, "tables": []}


def test_result_digest_follows_file_contents_and_parameters(tmp_path):
    f = tmp_path / "image.nii.gz"
    f.write_bytes(b"one")
    key = result_digest("stage", {"threshold": 5}, [f])
    assert key == Task("k", "stage", identity={"threshold": 5}, inputs=(str(f),)).digest()  # the runner's key
    assert result_digest("stage", {"threshold": 8}, [f]) != key
    assert result_digest("other", {"threshold": 5}, [f]) != key
    f.write_bytes(b"two")  # a replaced file, same path
    assert result_digest("stage", {"threshold": 5}, [f]) != key


@pytest.fixture
def store(tmp_path):
    return StudyStore.create(tmp_path / "study", [])


def test_tables_written_together_and_a_half_written_pair(store):
    store.write_tables({"a": pd.DataFrame({"x": [1]}), "b": pd.DataFrame({"y": [2]})}, {"step": "s"})
    assert store.together(["a", "b"])
    store.check_together(["a", "b"], "s")
    store.write_table("b", pd.DataFrame({"y": [3]}), {"step": "s"})  # a second run died after one table
    assert not store.together(["a", "b"])
    with pytest.raises(InputError, match="not written by the same run"):
        store.check_together(["a", "b"], "s")
    with pytest.raises(InputError, match=r"\['c'\] not found"):
        store.check_together(["a", "c"], "s")


def test_merged_keeps_every_row_the_run_did_not_plan(store):
    full = pd.DataFrame({"patient_id": ["P1", "P1", "P2", "P2"], "reader": ["R1", "R2", "R1", "R2"],
                         "v": [1.0, 2.0, 3.0, 4.0]})
    store.write_table("t", full, {})
    new = pd.DataFrame({"patient_id": ["P1"], "reader": ["R1"], "v": [10.0]})
    merged = store.merged("t", new, ["patient_id", "reader"])
    assert sorted(zip(merged["patient_id"], merged["reader"], merged["v"])) == [
        ("P1", "R1", 10.0), ("P1", "R2", 2.0), ("P2", "R1", 3.0), ("P2", "R2", 4.0)]
    # a planned case that failed now loses its old row (it is not silently kept as if current)
    failed_now = store.merged("t", new, ["patient_id", "reader"], replaced=[("P1", "R1"), ("P2", "R2")])
    assert sorted(zip(failed_now["patient_id"], failed_now["reader"])) == [("P1", "R1"), ("P1", "R2"), ("P2", "R1")]
    assert len(store.merged("absent", new, ["patient_id", "reader"])) == 1
    with pytest.raises(InputError, match="stage name"):
        store.work_dir("../outside")
    assert store.work_dir("radiomics") == store.root / "work" / "radiomics"
    assert store.cache_dir("deep_resnet50") == store.root / "cache" / "deep_resnet50"


def test_command_helpers_are_not_shadowed_by_command_modules():
    """``from . import name`` in a command file must get the helper, not a submodule of that name."""
    import pkgutil

    from NACResponseLib import commands

    modules = {m.name for m in pkgutil.iter_modules(commands.__path__)}
    assert not {"comma_list", "print_result"} & modules
    assert commands.comma_list(" a, b,,c ") == ["a", "b", "c"] and commands.comma_list("") is None
