"""Consensus segmentations from several readers: majority vote or STAPLE (SimpleITK).

A consensus is stored as an extra "reader" (method ``consensus``) so that agreement tables and
feature extraction treat it like any other segmentation.

* Majority vote keeps a voxel when more than half of the readers marked it (with two readers
  this is their intersection; ``ties="include"`` keeps half-votes, i.e. the union for two).
* STAPLE (Warfield et al. 2004) estimates each reader's sensitivity/specificity by EM and
  thresholds the voxel-wise posterior at 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError, NACError
from ..paths import check_id
from ..study.store import StudyStore

METHODS = ("majority", "staple")
DEFAULT_READER_IDS = {"majority": "MV", "staple": "STAPLE"}


def _arrays(masks) -> list[np.ndarray]:
    import SimpleITK as sitk

    out = [sitk.GetArrayFromImage(m) if isinstance(m, sitk.Image) else np.asarray(m) for m in masks]
    if len(out) < 2:
        raise InputError(f"a consensus needs at least 2 segmentations (got {len(out)})")
    if len({a.shape for a in out}) != 1:
        raise InputError(f"segmentations differ in shape: {[a.shape for a in out]}")
    return [a != 0 for a in out]


def majority_vote(masks: Sequence, *, ties: str = "exclude") -> np.ndarray:
    """Voxel-wise majority of binary masks (numpy arrays or SimpleITK images) -> uint8 array."""
    if ties not in ("exclude", "include"):
        raise InputError("ties must be 'exclude' or 'include'")
    arrays = _arrays(masks)
    votes = np.sum(arrays, axis=0)
    k = len(arrays)
    keep = votes * 2 > k if ties == "exclude" else votes * 2 >= k
    return keep.astype(np.uint8)


def staple(masks: Sequence, *, threshold: float = 0.5) -> tuple[np.ndarray, dict[str, list[float]]]:
    """STAPLE consensus -> (uint8 array, {"sensitivity": [...], "specificity": [...]} per reader)."""
    import SimpleITK as sitk

    arrays = _arrays(masks)
    images = [sitk.GetImageFromArray(a.astype(np.uint8)) for a in arrays]
    filt = sitk.STAPLEImageFilter()
    filt.SetForegroundValue(1.0)
    prob = filt.Execute(images)
    out = (sitk.GetArrayFromImage(prob) >= threshold).astype(np.uint8)
    return out, {"sensitivity": list(filt.GetSensitivity()), "specificity": list(filt.GetSpecificity())}


def consensus_mask(masks: Sequence, method: str = "staple"):
    """Consensus of SimpleITK masks on one grid -> SimpleITK uint8 mask with that grid."""
    import SimpleITK as sitk

    from ..geometry import check_same_geometry

    if method not in METHODS:
        raise InputError(f"consensus method must be one of {METHODS}, not {method!r}")
    for i, m in enumerate(masks[1:], start=2):
        check_same_geometry(masks[0], m, "segmentation 1", f"segmentation {i}")
    array = majority_vote(masks) if method == "majority" else staple(masks)[0]
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(masks[0])
    return image


def build_consensus(store: StudyStore, sets: dict[tuple[str, str], dict[str, Any]], *, method: str = "staple",
                    reader_id: str | None = None, progress=None, cancel=None) -> dict[str, Any]:
    """Write a consensus per case into ``<study>/consensus/<reader_id>/`` and add it to the manifest.

    ``sets`` maps (patient, timepoint) -> {reader: Segmentation} (e.g. from a reader session).
    Cases that already have this consensus are skipped (finished work is not recomputed);
    per-case failures are recorded and the rest goes on.
    """
    import SimpleITK as sitk

    from ..imageio import read_mask, write_image
    from ..provenance import now_iso

    reader_id = check_id(reader_id or DEFAULT_READER_IDS.get(method, "CONSENSUS"), "consensus reader id")
    made, skipped, failed, rows = [], [], {}, []
    for (pid, tp), by_reader in sets.items():
        if cancel is not None:
            cancel.check()
        rel = f"consensus/{reader_id}/{pid}__{tp}.nii.gz"
        timepoint = store.cohort[pid].timepoint(tp)
        if any(s.path == rel for s in timepoint.segmentations):
            skipped.append(f"{pid}/{tp}")
        else:
            try:
                readers = sorted(by_reader)
                masks = []
                for r in readers:
                    seg = by_reader[r]
                    m = read_mask(store.path(seg.path), label=seg.label)
                    binary = sitk.Cast(m == seg.label, sitk.sitkUInt8)
                    binary.CopyInformation(m)
                    masks.append(binary)
                mask = consensus_mask(masks, method)
                if not np.any(sitk.GetArrayViewFromImage(mask)):
                    raise InputError(f"{pid}/{tp}: the {method} consensus of {readers} is empty")
                write_image(mask, store.path(rel))
                ref = next(iter(by_reader.values())).reference
                rows.append({"patient_id": pid, "timepoint": tp, "kind": "segmentation", "path": rel,
                             "reader": reader_id, "method": "consensus", "label": 1, "reference": ref,
                             "created": now_iso(), "description": f"{method} of {', '.join(readers)}",
                             "date": timepoint.date, "cycle": timepoint.cycle})
                made.append(f"{pid}/{tp}")
            except NACError as exc:
                failed[f"{pid}/{tp}"] = str(exc)
        if progress is not None:
            progress.update(1, f"{pid}/{tp}")
    if rows:
        store.add_manifest_rows(rows)
        store.audit("consensus.build", target=f"consensus:{reader_id}",
                    details={"method": method, "cases": len(rows), "failed": failed})
    return {"reader": reader_id, "made": made, "skipped": skipped, "failed": failed}
