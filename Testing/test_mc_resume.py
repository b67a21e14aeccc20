"""``mc detect`` keys each mammogram by its file and parameters, and writes its two tables as one unit.

Probes: a kill between the ``mc_images`` and ``mc_detections`` writes, then a rerun, must give
the same RESMIN comparison as an uninterrupted run (it once reported a complete MC response,
-100 %, on every side); a changed ``--threshold`` or a replaced mammogram must be recomputed
(it once reported "done 0, skipped 4").
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from NACResponseLib.errors import InputError
from NACResponseLib.imageio import write_image
from NACResponseLib.mc.cohort import compare_study, detect_study, extent_study
from NACResponseLib.mc.detect import DetectorParams
from NACResponseLib.mc.phantom import synthesize_mammogram
from NACResponseLib.study.store import StudyStore

# per patient: pre and post cluster extent (mm)
PLAN = {"P001": (12.0, 12.0), "P002": (14.0, 4.0)}


def _cluster(extent):
    return [{"center_mm": (20, 22), "n": 7, "extent_mm": extent, "diameter_mm": (0.3, 0.5), "cnr": 9}]


@pytest.fixture(scope="module")
def mc_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("mc_study") / "study"
    rng = np.random.default_rng(11)
    rows = []
    for pid, (pre, post) in PLAN.items():
        for tp, extent in (("pre", pre), ("post", post)):
            image, _ = synthesize_mammogram(rng, size_mm=(40.0, 45.0), clusters=_cluster(extent))
            img = sitk.GetImageFromArray(image)
            img.SetSpacing((0.1, 0.1))
            rel = f"images/{pid}/{tp}/mg_cc_L.nii.gz"
            write_image(img, root / rel)
            rows.append({"patient_id": pid, "timepoint": tp, "kind": "image", "path": rel, "role": "mg_cc",
                         "modality": "MG", "laterality": "L"})
    return StudyStore.create(root, rows)


@pytest.fixture
def study(mc_study, tmp_path):
    dest = tmp_path / "study"
    shutil.copytree(mc_study.root, dest)
    return StudyStore(dest)


RECIST = {pid: "PR" for pid in PLAN}


def _pipeline(store):
    extent_study(store)
    return compare_study(store, recist=RECIST).outputs["resmin"]


@pytest.fixture(scope="module")
def uninterrupted(mc_study, tmp_path_factory):
    dest = tmp_path_factory.mktemp("reference") / "study"
    shutil.copytree(mc_study.root, dest)
    store = StudyStore(dest)
    detect_study(store, progress_mode="none")
    return _pipeline(store)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, nothing catches it."""


@pytest.mark.slow
def test_kill_between_the_two_table_writes_then_rerun(study, uninterrupted, monkeypatch):
    detect_study(study, timepoints=["pre"], progress_mode="none")  # an earlier, complete run over pre
    real = StudyStore.write_table

    def killed_before_detections(self, name, frame, provenance):
        if name == "mc_detections":
            raise Killed
        return real(self, name, frame, provenance)

    monkeypatch.setattr(StudyStore, "write_table", killed_before_detections)
    with pytest.raises(Killed):
        detect_study(study, progress_mode="none")
    monkeypatch.setattr(StudyStore, "write_table", real)
    # the half-written pair is refused downstream, not analysed
    with pytest.raises(InputError, match="not written by the same run"):
        extent_study(study)
    rerun = detect_study(study, progress_mode="none")
    assert rerun.done == 0 and rerun.reused == 2 * len(PLAN)  # nothing recomputed, both tables rewritten
    assert set(rerun.tables) == {"mc_images", "mc_detections"}
    got = _pipeline(study)
    assert (uninterrupted["change_pct"] > -100).any()  # the probe's failure mode would be -100 % everywhere
    cols = ["patient_id", "laterality", "pre_extent_mm", "post_extent_mm", "change_pct", "mc_category"]
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), uninterrupted[cols].reset_index(drop=True))


@pytest.mark.slow
def test_changed_threshold_or_replaced_image_recomputes(study):
    first = detect_study(study, progress_mode="none")
    assert first.done == 4 and first.reused == 0 and not first.failed
    again = detect_study(study, progress_mode="none")
    assert again.done == 0 and again.reused == 4 and again.tables == []
    n5 = len(study.read_table("mc_detections"))
    stricter = detect_study(study, params=DetectorParams(threshold=8.0), progress_mode="none")
    assert stricter.done == 4 and stricter.reused == 0
    assert study.table_provenance("mc_images")["parameters"]["threshold"] == 8.0
    strictest = detect_study(study, params=DetectorParams(threshold=12.0), progress_mode="none")
    assert strictest.done == 4
    det = study.read_table("mc_detections")
    assert len(det) < n5 and det["score"].min() >= 12.0  # the stored detections follow the new threshold
    # a replaced mammogram (same path, new content) is recomputed alone
    path = study.path(study.cohort["P001"].timepoint("post").image("mg_cc_L").path)
    img = sitk.ReadImage(str(path))
    write_image(sitk.Flip(img, [True, False]), path)
    replaced = detect_study(study, params=DetectorParams(threshold=12.0), progress_mode="none")
    assert replaced.done == 1 and replaced.reused == 3
    forced = detect_study(study, params=DetectorParams(threshold=12.0), force=True, progress_mode="none")
    assert forced.done == 4


@pytest.mark.slow
def test_subset_run_keeps_other_timepoints_and_refuses_mixed_parameters(study):
    detect_study(study, progress_mode="none")
    detect_study(study, timepoints=["post"], progress_mode="none")
    images = study.read_table("mc_images")
    assert sorted(images["timepoint"]) == ["post", "post", "pre", "pre"]
    with pytest.raises(InputError, match="other parameters"):
        detect_study(study, timepoints=["post"], params=DetectorParams(threshold=8.0), progress_mode="none")
