"""Demo stage helpers that do not need a whole demo run."""

from __future__ import annotations

import pytest

from NACResponseLib.errors import ExistingResultError


def test_stale_demo_bundle_is_moved_aside_not_overwritten(tmp_path, monkeypatch):
    """A DLR bundle that an older demo left with other parameters is moved to ``superseded/`` with
    its files intact, and the stage trains a new one in its place; other errors still propagate."""
    from NACResponseLib.deep import dlr_cohort
    from NACResponseLib.demo.stages import s75_dlr

    out = tmp_path / "study" / "models" / "demo_dlr_c2"
    (out / "configs").mkdir(parents=True)
    (out / "configs" / "metadata.json").write_text('{"old": true}')
    calls = []

    def fake_train(store, folder, **kwargs):
        calls.append(folder)
        if (folder / "configs" / "metadata.json").is_file():
            raise ExistingResultError(f"{folder}: made from other parameters")
        folder.mkdir(parents=True)
        return {"path": str(folder), "reused": False}

    monkeypatch.setattr(dlr_cohort, "train_dlr_study", fake_train)
    res = s75_dlr._train_replacing_stale(None, out, tmp_path / "superseded", step="c2")
    assert res["path"] == str(out) and calls == [out, out]
    moved = list((tmp_path / "superseded").iterdir())
    assert len(moved) == 1 and moved[0].name.startswith("demo_dlr_c2-")
    assert (moved[0] / "configs" / "metadata.json").read_text() == '{"old": true}'

    def broken(store, folder, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(dlr_cohort, "train_dlr_study", broken)
    with pytest.raises(ValueError):
        s75_dlr._train_replacing_stale(None, out, tmp_path / "superseded", step="c2")
