"""Cohort extraction on the synthetic study: executors agree exactly, kill + resume, provenance, CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from NACResponseLib.radiomics import extract_case, extract_cohort, plan_rois
from NACResponseLib.study.store import StudyStore

# small parameter set for CI time (the full default is covered in test_radiomics_inputs)
PARAMS = {"imageType": {"Original": {}}, "featureClass": {"shape": None, "firstorder": None, "glcm": None},
          "setting": {"resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline", "normalize": True,
                      "normalizeScale": 100, "voxelArrayShift": 300, "binWidth": 25, "label": 1}}
SELECT = {"images": ["dce_early", "t2w"], "readers": ["R1", "R2"]}


def _copy(study, dest) -> StudyStore:
    shutil.copytree(study.root, dest, ignore=shutil.ignore_patterns("work", "tables"))
    return StudyStore(dest)


@pytest.fixture(scope="module")
def serial_run(synthetic_study, tmp_path_factory):
    store = _copy(synthetic_study, tmp_path_factory.mktemp("serial") / "study")
    result = extract_cohort(store, PARAMS, mode="serial", progress_mode="none", **SELECT)
    return store, result


def _tables(store):
    return {name: store.read_table(name) for name in ("radiomics", "radiomics_wide")}


def test_pairs_follow_mask_grid(synthetic_study):
    rois = plan_rois(synthetic_study)
    images = {r.image for r in rois}
    # DWI/ADC lie on a coarser grid than the DCE-grid masks: not paired unless asked for
    assert {"dce_early", "t2w"} <= images and not images & {"adc", "dwi_b800"}
    assert {r.image for r in plan_rois(synthetic_study, resample_masks=True)} >= {"adc", "dwi_b800"}
    assert len({r.key for r in rois}) == len(rois)


def test_serial_run_tables(serial_run, synthetic_study):
    store, result = serial_run
    long = store.read_table("radiomics")
    n_rois = len(plan_rois(synthetic_study, **SELECT))
    assert len(long) + len(result.failures) == n_rois
    assert list(long.columns[:6]) == ["patient_id", "timepoint", "image", "reader", "method", "label"]
    assert "original_glcm_Contrast" in long.columns and not any(c.startswith("diagnostics") for c in long.columns)
    wide = store.read_table("radiomics_wide")
    assert set(wide.reader) == {"R1", "R2"} and len(wide) == 2 * len(synthetic_study.cohort)
    assert "pre__dce_early__original_firstorder_Mean" in wide.columns
    assert "delta_rel__pre_post__t2w__original_shape_VoxelVolume" in wide.columns
    # wide values are the long values, and deltas are post - pre of them
    one = long[(long.patient_id == long.patient_id.iloc[0]) & (long.reader == "R1") & (long.image == "t2w")]
    pre = one[one.timepoint == "pre"]["original_firstorder_Mean"].item()
    row = wide[(wide.patient_id == one.patient_id.iloc[0]) & (wide.reader == "R1")].iloc[0]
    assert row["pre__t2w__original_firstorder_Mean"] == pre
    if (one.timepoint == "c2").any():
        c2 = one[one.timepoint == "c2"]["original_firstorder_Mean"].item()
        assert row["delta_abs__pre_c2__t2w__original_firstorder_Mean"] == c2 - pre


def test_provenance_on_every_table(serial_run):
    store, _ = serial_run
    for name in ("radiomics", "radiomics_wide", "radiomics_failures"):
        prov = store.table_provenance(name)
        assert prov["step"] == "radiomics"
        versions = prov["versions"]
        assert versions["pyradiomics"] and versions["SimpleITK"] and versions["nacresponse"]
        sets = prov["parameters"]["parameter_sets"]
        assert sets["params"]["parameters"] == PARAMS and len(sets["params"]["sha256"]) == 64
        assert "file_sha256" in sets["params_2d"]  # the shipped 2D file, hashed
        inputs = prov["inputs_sha256"]
        assert any(k.endswith("R1__manual.nii.gz") for k in inputs) and any(k.endswith("t2w.nii.gz") for k in inputs)
        assert all(not Path(k).is_absolute() for k in inputs)
    runs = store.runs()
    assert runs[-1]["step"] == "radiomics" and runs[-1]["status"].startswith("done")


@pytest.mark.slow
def test_process_pool_and_dask_give_identical_tables(serial_run, synthetic_study, tmp_path):
    from NACResponseLib.runner import local_cluster

    reference = _tables(serial_run[0])
    pool_store = _copy(synthetic_study, tmp_path / "pool")
    extract_cohort(pool_store, PARAMS, jobs=2, progress_mode="none", **SELECT)
    dask_store = _copy(synthetic_study, tmp_path / "dask")
    with local_cluster(2) as cluster:
        res = extract_cohort(dask_store, PARAMS, scheduler=cluster.scheduler_address, progress_mode="none", **SELECT)
    assert res.summary.mode == "dask" and res.summary.workers == 2
    for store in (pool_store, dask_store):
        for name, frame in _tables(store).items():
            pd.testing.assert_frame_equal(frame, reference[name], check_exact=True)


@pytest.mark.slow
def test_killed_run_resumes_to_identical_tables(serial_run, synthetic_study, tmp_path):
    store = _copy(synthetic_study, tmp_path / "killed")
    params = tmp_path / "params.json"
    params.write_text(json.dumps(PARAMS))
    cmd = [sys.executable, "-m", "NACResponseLib.cli", "--progress", "none", "features", "radiomics", str(store.root),
           "--params", str(params), "--jobs", "2", "--images", "dce_early,t2w", "--readers", "R1,R2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = store.root / "work" / "radiomics"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(results.glob("*.json"))) < 4 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers, mid-run
    proc.wait()
    n_before = len(list(results.glob("*.json")))
    assert n_before >= 4 and not store.has_table("radiomics")
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode in (0, 1), rerun.stderr
    assert "already finished" in rerun.stderr
    reused = int(rerun.stderr.split("computed, ")[1].split(" already")[0])
    assert reused >= n_before - 2  # at most the two tasks being written at the kill are redone
    for name, frame in _tables(store).items():
        pd.testing.assert_frame_equal(frame, _tables(serial_run[0])[name], check_exact=True)


def test_failed_roi_is_recorded_and_run_goes_on(synthetic_study, tmp_path):
    store = _copy(synthetic_study, tmp_path / "broken")
    patient = next(iter(store.cohort))
    seg = patient.timepoint("pre").segmentations_by(reader="R1")[0]
    import numpy as np
    import SimpleITK as sitk

    mask = sitk.ReadImage(str(store.path(seg.path)))
    empty = sitk.GetImageFromArray(np.zeros_like(sitk.GetArrayFromImage(mask)))
    empty.CopyInformation(mask)
    sitk.WriteImage(empty, str(store.path(seg.path)))
    out = extract_cohort(store, PARAMS, mode="serial", progress_mode="none", images=["dce_early"], readers=["R1"],
                         timepoints=["pre"])
    assert out.summary.failed == 1 and out.summary.done == len(store.cohort) - 1
    failures = store.read_table("radiomics_failures")
    assert failures.patient_id.tolist() == [patient.patient_id]
    assert "mask is empty" in failures.error.item() and seg.path in failures.error.item()
    assert patient.patient_id not in set(store.read_table("radiomics").patient_id)


def test_run_that_ends_in_an_error_is_recorded_failed(synthetic_study, tmp_path, monkeypatch):
    """An error other than a cancel (here the table write: a full disk) marks the run failed with
    the error; it used to stay 'running' for ever."""
    store = _copy(synthetic_study, tmp_path / "full")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write_tables", disk_full)
    with pytest.raises(OSError, match="No space left"):
        extract_cohort(store, PARAMS, mode="serial", progress_mode="none", images=["dce_early"], readers=["R1"],
                       timepoints=["pre"])
    run = store.runs()[-1]
    assert run["step"] == "radiomics" and run["status"] == "failed" and run["finished"]
    assert "No space left on device" in json.loads(run["summary"])["error"]


def test_our_preprocessing_version_is_in_the_task_digest(synthetic_study, tmp_path, monkeypatch):
    """Unchanged: the per-ROI result is reused.  A bumped pre-processing version, or another release
    of the package, recomputes it (only pyradiomics' version used to be in the digest)."""
    import NACResponseLib
    from NACResponseLib.radiomics import ibsi_preprocessing

    store = _copy(synthetic_study, tmp_path / "versions")
    one = {"images": ["dce_early"], "readers": ["R1"], "timepoints": ["pre"], "patients": [next(iter(store.cohort)).patient_id]}

    def run():
        return extract_cohort(store, PARAMS, mode="serial", progress_mode="none", **one).summary

    assert run().computed == 1
    again = run()
    assert (again.computed, again.reused) == (0, 1)
    monkeypatch.setattr(ibsi_preprocessing, "PREPROCESSING_VERSION", ibsi_preprocessing.PREPROCESSING_VERSION + 1)
    assert run().computed == 1
    assert run().reused == 1
    monkeypatch.setattr(NACResponseLib, "__version__", NACResponseLib.__version__ + ".post1")
    assert run().computed == 1


def test_extract_case_matches_cohort_rows(serial_run):
    store, result = serial_run
    pid = result.long.patient_id.iloc[0]
    case = extract_case(store, pid, PARAMS, mode="serial", **SELECT)
    expected = result.long[result.long.patient_id == pid].reset_index(drop=True)
    pd.testing.assert_frame_equal(case, expected, check_exact=True)


def test_cli_features_radiomics(serial_run, tmp_path):
    from NACResponseLib.cli import main

    store, _ = serial_run
    params = tmp_path / "p.yaml"
    import yaml

    params.write_text(yaml.safe_dump(PARAMS))
    rc = main(["--progress", "none", "features", "radiomics", str(store.root), "--params", str(params), "--serial",
               "--images", "dce_early,t2w", "--readers", "R1,R2"])
    assert rc in (0, 1)
    assert main(["features", "radiomics", str(tmp_path / "nostudy")]) == 2
    assert main(["features", "radiomics", str(store.root), "--params", str(tmp_path / "none.yaml")]) == 2


def test_roi_cost_follows_label_volume_and_filters(synthetic_study):
    import numpy as np
    import SimpleITK as sitk

    from NACResponseLib.radiomics import load_params, make_tasks
    from NACResponseLib.radiomics.cohort import _n_images, roi_cost

    breast = load_params("breast")
    assert _n_images(breast) == 1 + 8 + len(breast["imageType"]["LoG"]["sigma"])  # Original + wavelet + LoG
    assert _n_images(PARAMS) == 1
    rois = plan_rois(synthetic_study, images=["t2w"], readers=["R1", "R2"])
    tasks = make_tasks(synthetic_study, rois, PARAMS, PARAMS)
    # independent reference: label voxels x voxel volume, read with SimpleITK + numpy
    volumes = []
    for r in rois:
        mask = sitk.ReadImage(str(synthetic_study.path(r.mask_path)))
        volumes.append(np.count_nonzero(sitk.GetArrayFromImage(mask) == r.label) * np.prod(mask.GetSpacing()))
    costs = [roi_cost(t) for t in tasks]
    assert np.allclose(costs, volumes)  # 1 mm resampling: cost = volume in mm^3 x 1 image
    assert roi_cost(make_tasks(synthetic_study, rois[:1], breast, breast)[0]) == pytest.approx(
        volumes[0] * _n_images(breast))


def test_unchanged_rerun_keeps_stored_tables(serial_run, tmp_path):
    store = StudyStore(shutil.copytree(serial_run[0].root, tmp_path / "rerun"))
    # (another test may have rewritten the fixture's tables from a parameter file: same values,
    # other provenance) - this run makes sure the tables come from PARAMS as a dict
    extract_cohort(store, PARAMS, mode="serial", progress_mode="none", **SELECT)
    paths = {name: store.table_path(name) for name in ("radiomics", "radiomics_wide", "radiomics_failures")}
    before = {name: (p.stat().st_mtime_ns, p.read_bytes()) for name, p in paths.items()}
    reference = _tables(store)
    again = extract_cohort(store, PARAMS, mode="serial", progress_mode="none", **SELECT)
    assert again.reused_tables and again.summary.unchanged and again.summary.computed == 0
    assert {name: (p.stat().st_mtime_ns, p.read_bytes()) for name, p in paths.items()} == before  # not rewritten
    for name, frame in reference.items():
        pd.testing.assert_frame_equal(getattr(again, {"radiomics": "long", "radiomics_wide": "wide"}[name]), frame)
    assert again.provenance["fingerprint"] == store.table_provenance("radiomics_wide")["fingerprint"]
    assert store.runs()[-1]["status"].startswith("done")
    # a table missing (e.g. killed between the table writes): all three are rebuilt from the records
    paths["radiomics_wide"].unlink()
    rebuilt = extract_cohort(store, PARAMS, mode="serial", progress_mode="none", **SELECT)
    assert not rebuilt.reused_tables and rebuilt.summary.computed == 0
    for name, frame in reference.items():
        pd.testing.assert_frame_equal(store.read_table(name), frame, check_exact=True)
    # another selection is another fingerprint: its ROIs are merged into the tables (never narrowing them)
    before_images = set(store.read_table("radiomics").image)
    r1 = extract_cohort(store, PARAMS, mode="serial", progress_mode="none", images=["t2w"], readers=["R1"])
    assert not r1.reused_tables and set(store.read_table("radiomics").image) == before_images | {"t2w"}
    assert r1.summary.computed == 0  # ... from the finished records, nothing recomputed


def test_subset_run_keeps_other_patients_rows(copy_study):
    """The GUI's per-case run (--patients P) must not drop the rest of the cohort from the tables."""
    import pandas as pd

    from NACResponseLib.errors import InputError
    from NACResponseLib.radiomics import extract_cohort

    store = copy_study
    opts = dict(mode="serial", images=["dce_early"], readers=["R1"], timepoints=["pre", "post"], progress_mode="none")
    full = extract_cohort(store, "fast", **opts)
    full_long, full_wide = full.long.copy(), full.wide.copy()
    extract_cohort(store, "fast", patients=["P002"], **opts)
    long, wide = store.read_table("radiomics"), store.read_table("radiomics_wide")
    assert sorted(long["patient_id"].unique()) == sorted(full_long["patient_id"].unique())
    pd.testing.assert_frame_equal(long.reset_index(drop=True), full_long.reset_index(drop=True))
    pd.testing.assert_frame_equal(wide.reset_index(drop=True), full_wide.reset_index(drop=True))
    with pytest.raises(InputError, match="other parameters"):
        extract_cohort(store, "ibsi", patients=["P002"], **opts)


def test_subset_runs_merge_on_every_filter(copy_study):
    """After a full run, --readers R1 must not cut the tables to R1's rows, and --patients P001
    --readers R1 must not drop P001's other readers."""
    from NACResponseLib.radiomics import extract_cohort

    store = copy_study
    opts = dict(mode="serial", images=["dce_early"], progress_mode="none")
    full = extract_cohort(store, "fast", **opts)
    full_long, full_wide, full_fail = full.long.copy(), full.wide.copy(), full.failures.copy()
    assert {"R1", "R2"} <= set(full_long["reader"])
    first = sorted(store.cohort.patients)[0]
    for subset in ({"readers": ["R1"]}, {"patients": [first], "readers": ["R1"]}, {"timepoints": ["pre"]},
                   {"methods": ["manual"], "readers": ["R2"]}):
        run = extract_cohort(store, "fast", **opts, **subset)
        assert run.summary.computed == 0 and len(run.rois) < len(full.rois)
        long, wide = store.read_table("radiomics"), store.read_table("radiomics_wide")
        assert len(long) == len(full_long), subset
        pd.testing.assert_frame_equal(long, full_long.reset_index(drop=True), check_exact=True)
        pd.testing.assert_frame_equal(wide, full_wide.reset_index(drop=True), check_exact=True)
        pd.testing.assert_frame_equal(store.read_table("radiomics_failures"), full_fail.reset_index(drop=True))
    assert {"R1", "R2"} <= set(long.loc[long["patient_id"] == first, "reader"])
