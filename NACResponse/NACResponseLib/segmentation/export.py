"""Study segmentations out of the study: NIfTI copies and (optionally) DICOM SEG referencing the source series.

Layout: ``<out>/<patient>/<timepoint>/<reader>__<method>.nii.gz`` (+ ``.dcm``).  The masks are
chosen like ``seg measure`` chooses them (readers, methods, patients, timepoints).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..errors import InputError


def export_segmentations(store, out_dir: str | Path, *, dicom_seg: bool = False, readers: list[str] | None = None,
                         methods: list[str] | None = None, patients: list[str] | None = None,
                         timepoints: list[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
    from ..atomic import atomic_path
    from ..imageio import read_image, write_image
    from ..study.dicom_seg import export_dicom_segs

    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out}: folder is not empty; choose an empty folder or pass --overwrite")
    items = []
    for patient, tp, seg in store.cohort.select_segmentations(patients=patients, timepoints=timepoints,
                                                              readers=readers, methods=methods):
        items.append((patient.patient_id, tp.name, seg, f"{patient.patient_id}/{tp.name}/{seg.reader}__{seg.method}"))
    if not items:
        raise InputError(f"{store.manifest_path}: no segmentation matches the chosen readers/methods/patients/"
                         "timepoints")
    result: dict[str, Any] = {"written": [], "failed": {}}
    if dicom_seg:  # checked first: a study without DICOM series is refused before any file is copied
        result = export_dicom_segs(store, [(p, t, s, f"{rel}.dcm") for p, t, s, rel in items], out)
    for _, _, seg, rel in items:
        target = out / f"{rel}.nii.gz"
        if seg.path.endswith(".nii.gz"):
            with atomic_path(target) as tmp:
                shutil.copyfile(store.path(seg.path), tmp)
        else:
            write_image(read_image(store.path(seg.path)), target)
        result["written"].append(target)
    return result
