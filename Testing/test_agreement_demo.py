"""Demo stage s30 on the small synthetic study (with a stand-in radiomics table)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import SimpleITK as sitk

from NACResponseLib.demo.run import DemoContext
from NACResponseLib.demo.stages import s30_agreement


def _radiomics(store):
    rows = []
    rng = np.random.default_rng(1)
    for p in store.cohort:
        for tp in p.ordered_timepoints():
            for seg in tp.segmentations_by(method="manual"):
                vol = float(sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(seg.path)))).sum())
                for image in ("dce_early", "adc"):
                    rows.append({"patient_id": p.patient_id, "timepoint": tp.name, "image": image,
                                 "reader": seg.reader, "method": "manual", "label": 1,
                                 "original_shape_VoxelVolume": vol, "original_glcm_Noise": rng.normal(),
                                 "original_firstorder_Constant": 1.0})
    return pd.DataFrame(rows)


def test_stage_runs_session_agreement_and_icc(copy_study, tmp_path):
    ctx = DemoContext(out_dir=copy_study.root.parent, n_patients=6, seed=7, quick=True, study=copy_study)
    missing = s30_agreement.run(ctx)
    assert "missing" in missing["icc"] and missing["complete"]
    copy_study.write_table("radiomics", _radiomics(copy_study), {"step": "test"})
    ctx.sections.clear()
    res = s30_agreement.run(ctx)  # second run reuses the session
    assert res["cases"] == 18 and 0.5 < res["dice_median_R1_R2"] < 1.0
    assert res["features"] == 6 and res["features_kept"] == 2  # VoxelVolume on both images
    title, body = ctx.sections[0]
    assert "Spatial agreement" in body and "2 of 6" in body
    for src in [s.split("'")[0] for s in body.split("<img src='")[1:]]:
        assert (ctx.out_dir / src).is_file(), src
