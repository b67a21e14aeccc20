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


def test_dlrp_rows_write_null_not_nan_for_counts_that_do_not_apply():
    import json

    import numpy as np

    from NACResponseLib.demo.stages import s75_dlr
    from NACResponseLib.modelling.stepwise import flag_table, stepwise_flags
    from NACResponseLib.provenance import strict_json

    # built as evaluate_dlr_study builds ev["dlrp"]["table"]
    y = np.array([0, 0, 1, 1, 1, 0])
    probs = {"c2": np.array([0.1, 0.6, 0.9, 0.7, 0.2, 0.8]), "c4": np.array([0.2, 0.1, 0.9, 0.8, 0.6, 0.9])}
    table = flag_table(y, stepwise_flags(probs, {"c2": 0.5, "c4": 0.5}))
    table.insert(1, "model", ["DLR-2", "DLR-4", ""])
    raw = table.to_dict(orient="records")
    assert '"NaN"' in strict_json(raw)  # what the summary held before
    rows = s75_dlr._dlrp_rows(raw)
    text = strict_json({"dlrp": rows})
    assert "NaN" not in text and "nan" not in text.lower()
    back = {r["step"]: r for r in json.loads(text)["dlrp"]}
    assert back["c2"]["responders"] is None and back["c4"]["non_responders"] is None
    assert back["not flagged"] == {"step": "not flagged", "model": "", "evaluated": 3, "flagged": 0,
                                   "flagged_non_responders": 0, "flagged_responders": 0, "responders": 2,
                                   "non_responders": 1}
    assert back["c2"]["flagged"] == 2 and back["c2"]["flagged_responders"] == 1
    assert all(type(v) is int for r in rows for k, v in r.items() if k not in ("step", "model") and v is not None)
    page = s75_dlr._table(rows, list(rows[0]))
    assert "nan" not in page.lower() and f"<td>{s75_dlr.NOT_APPLICABLE}</td>" in page and "2.000" not in page
