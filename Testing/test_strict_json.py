"""Every JSON file the project writes is strict RFC 8259 JSON, which other tools (browsers, jq,
R's jsonlite) parse: no bare ``NaN``/``Infinity``.  The reference parser is Python's own with
``parse_constant`` refusing those literals; non-finite floats come back through ``read_json``."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from NACResponseLib.provenance import read_json, strict_json


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON literal {name}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_are_strings_that_read_back():
    obj = {"inf": math.inf, "ninf": -np.inf, "nan": np.float32("nan"), "arr": np.array([1.0, np.inf]),
           "nested": [{"t": np.float64("inf")}, (2, "x")], "ok": 0.25, "n": np.int64(3), "none": None}
    text = strict_json(obj)
    parsed = _strict(text)
    assert parsed["inf"] == "Infinity" and parsed["ninf"] == "-Infinity" and parsed["nan"] == "NaN"
    back = read_json(text)
    assert back["inf"] == math.inf and back["ninf"] == -math.inf and math.isnan(back["nan"])
    assert back["arr"] == [1.0, math.inf] and back["nested"] == [{"t": math.inf}, [2, "x"]]
    assert (back["ok"], back["n"], back["none"]) == (0.25, 3, None)
    # files written before (bare literals) still read
    assert read_json('{"t": Infinity}') == {"t": math.inf}


def test_evaluation_json_with_an_infinite_fold_threshold_is_strict(tmp_path):
    """A fold whose best threshold is +inf (call nobody positive) used to be written as Infinity."""
    from NACResponseLib.modelling.cohort import load_evaluation
    from NACResponseLib.modelling.report import results_to_json

    results = {"models": {"radiomics": {"fold_thresholds": [0.4, np.inf], "auc": np.float64(0.7)}},
               "table": pd.DataFrame({"threshold": [np.inf, 0.3], "sensitivity": [0.0, np.nan]})}
    path = tmp_path / "evaluation.json"
    path.write_text(results_to_json(results))
    parsed = _strict(path.read_text())
    assert parsed["models"]["radiomics"]["fold_thresholds"] == [0.4, "Infinity"]
    back = load_evaluation(path)
    assert back["models"]["radiomics"]["fold_thresholds"] == [0.4, math.inf]
    assert back["table"][0]["threshold"] == math.inf and math.isnan(back["table"][1]["sensitivity"])


def test_runner_records_are_strict_and_keep_nan(tmp_path):
    from NACResponseLib.runner import read_record, write_record

    write_record(tmp_path, {"digest": "d1", "status": "done", "result": {"feature": float("nan"), "x": 1.5}})
    _strict((tmp_path / "d1.json").read_text())
    record = read_record(tmp_path, "d1")
    assert math.isnan(record["result"]["feature"]) and record["result"]["x"] == 1.5


def test_unserialisable_objects_still_fail_loudly():
    with pytest.raises(TypeError, match="not JSON serialisable"):
        strict_json({"x": object()}, default=lambda o: o)


def test_table_provenance_is_strict_and_reads_back(tmp_path):
    """Parquet tables carry their provenance as JSON in the file's metadata (read by pyarrow users)."""
    import pyarrow.parquet as pq

    from NACResponseLib.study.store import PROVENANCE_KEY, StudyStore

    store = StudyStore.create(tmp_path / "study", [])
    store.write_table("t", pd.DataFrame({"x": [1.0]}), {"parameters": {"threshold": math.inf, "auc": np.nan}})
    raw = pq.read_schema(store.table_path("t")).metadata[PROVENANCE_KEY]
    assert _strict(raw.decode())["parameters"]["threshold"] == "Infinity"
    back = store.table_provenance("t")["parameters"]
    assert back["threshold"] == math.inf and math.isnan(back["auc"])
