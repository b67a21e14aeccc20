"""Study-level segmentation work: train from a study, predict / FTV over a cohort, measure.

Outputs go to ``<study>/segmentations/<patient>/<timepoint>/<reader>__<method>.nii.gz`` and are
added to the manifest (method ``monai`` or ``ftv``) with a provenance record in the catalogue and a
``.provenance.json`` beside the file.  Files already listed in the manifest are never rewritten;
a failed or empty case is reported in the result table and the run goes on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..atomic import atomic_write_text
from ..errors import InputError
from ..imageio import read_image, write_image
from ..paths import check_id
from ..progress import CancelToken, Progress
from ..provenance import collect, now_iso, strict_json
from ..stage import StageResult
from ..study.model import ROLES, timepoint_order
from ..study.store import StudyStore
from .ftv import FTVConfig, functional_tumour_volume
from .inference import InferenceConfig
from .measurements import change_table, measure_mask
from .training import TrainingCase, TrainingConfig, train_model

log = logging.getLogger(__name__)

SEG_DIR = "segmentations"
PREDICTIONS_TABLE = "seg_predictions"
FTV_TABLE = "ftv"
MEASUREMENTS_TABLE = "tumour_measurements"


def output_path(patient_id: str, timepoint: str, reader: str, method: str, suffix: str = "") -> str:
    check_id(reader, "reader id")  # it becomes a file name in the study
    return f"{SEG_DIR}/{patient_id}/{timepoint}/{reader}__{method}{suffix}.nii.gz"


def _selected(store: StudyStore, patients: Iterable[str] | None, timepoints: Iterable[str] | None):
    patients = set(patients) if patients else None
    timepoints = set(timepoints) if timepoints else None
    for patient in store.cohort:
        if patients is not None and patient.patient_id not in patients:
            continue
        for tp in patient.ordered_timepoints():
            if timepoints is None or tp.name in timepoints:
                yield patient, tp


def _has_modality(tp, modalities: set[str]) -> bool:
    return any(img.modality in modalities for img in tp.images)


def _listed_paths(store: StudyStore) -> set[str]:
    return {s.path for p in store.cohort for t in p.timepoints.values() for s in t.segmentations}


def _write_provenance(store: StudyStore, rel: str, record: dict[str, Any]) -> None:
    atomic_write_text(store.path(rel + ".provenance.json"), strict_json(record, indent=1, default=str))
    with store.catalogue() as db:
        db.execute("INSERT INTO provenance (target, created, record) VALUES (?,?,?)",
                   (f"segmentation:{rel}", now_iso(), strict_json(record, default=str)))


# ---- training -----------------------------------------------------------------------------------
def cases_from_study(store: StudyStore, *, reader: str, method: str | None = None, channels: Iterable[str],
                     patients: Iterable[str] | None = None, timepoints: Iterable[str] | None = None
                     ) -> tuple[list[TrainingCase], list[str]]:
    """Labelled cases (a segmentation by ``reader`` and every channel present) and skip reasons."""
    channels = list(channels)
    cases, skipped = [], []
    for patient, tp in _selected(store, patients, timepoints):
        where = f"{patient.patient_id}/{tp.name}"
        try:
            seg = tp.reference_segmentation(reader=reader, method=method)
        except InputError as exc:  # two label files for one case
            skipped.append(f"{where}: {exc}")
            continue
        if seg is None:
            skipped.append(f"{where}: no segmentation by reader {reader}")
            continue
        missing = [c for c in channels if not tp.has_image(c)]
        if missing:
            skipped.append(f"{where}: missing channel(s) {missing}")
            continue
        cases.append(TrainingCase(case_id=where, group=patient.patient_id, label=str(store.path(seg.path)),
                                  label_value=seg.label,
                                  channels={c: str(store.path(tp.image(c).path)) for c in channels}))
    return cases, skipped


def train_from_study(store: StudyStore, out_dir: str | Path, *, reader: str, method: str | None = None,
                     config: TrainingConfig | None = None, patients: Iterable[str] | None = None,
                     timepoints: Iterable[str] | None = None, threads: int | None = None,
                     progress: Callable[[int, int, str], None] | None = None,
                     cancel: CancelToken | None = None) -> dict[str, Any]:
    """Train on the study's segmentations by ``reader`` and save the bundle in ``out_dir``."""
    config = config or TrainingConfig()
    cases, skipped = cases_from_study(store, reader=reader, method=method, channels=config.preprocess.channels,
                                      patients=patients, timepoints=timepoints)
    if not cases:
        raise InputError(f"{store.root}: no case has a segmentation by reader {reader!r} and channels "
                         f"{list(config.preprocess.channels)} ({len(skipped)} skipped)")
    with store.recorded_run("seg train", {"reader": reader, "method": method, "out": str(out_dir),
                                          **config.to_dict()}) as run:
        metrics = train_model(cases, out_dir, config, progress=progress, cancel=cancel, threads=threads,
                              extra_provenance={"study": str(store.root), "reader": reader, "method": method,
                                                "skipped_cases": skipped})
        run.finish("done", {k: v for k, v in metrics.items() if k != "history"})
    store.audit("seg train", target=str(out_dir), details={"reader": reader, "val_dice": metrics["val_dice_mean"]})
    return {**metrics, "skipped": skipped}


# ---- inference ----------------------------------------------------------------------------------
_MODEL_CACHE: dict[tuple[str, str], Any] = {}


def _cached_model(model_dir: str, device: str | None):
    from .bundle import load_bundle, read_metadata

    sha = read_metadata(model_dir)["nacresponse"]["weights_sha256"]
    key = (str(Path(model_dir).resolve()), sha)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = load_bundle(model_dir, device=device)
    return _MODEL_CACHE[key]


def predict_task(study_root: str, model_dir: str, patient_id: str, timepoint: str, channels: dict[str, str],
                 out_rel: str, config: dict[str, Any], save_probability: bool = False,
                 device: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """Runner task: segment one case, write its mask (+ probability) and provenance."""
    import torch

    from ..study.store import StudyStore
    from .inference import segment_case

    if threads:
        torch.set_num_threads(int(threads))
    store = StudyStore(study_root)
    model = _cached_model(model_dir, device)
    cfg = InferenceConfig(**{**config, "roi_size": tuple(config["roi_size"]) if config.get("roi_size") else None})
    name = f"{patient_id}/{timepoint}"
    pred = segment_case(model, channels, cfg, name=name)
    out: dict[str, Any] = {"volume_ml": pred.volume_ml, "empty": pred.empty, "message": pred.message,
                           "path": None, "probability_path": None}
    if save_probability:
        prob_rel = out_rel.replace(".nii.gz", "_probability.nii.gz")
        write_image(pred.probability, store.path(prob_rel))
        out["probability_path"] = prob_rel
    if not pred.empty:
        write_image(pred.mask, store.path(out_rel))
        record = collect(step="seg predict", parameters=cfg.to_dict(), inputs=list(channels.values()),
                         base=study_root, extra={"model": model.identity, "case": name})
        _write_provenance(store, out_rel, record)
        out["path"] = out_rel
    return out


def segment_study(store: StudyStore, model_dir: str | Path, *, reader: str = "monai", config: InferenceConfig | None = None,
                  patients: Iterable[str] | None = None, timepoints: Iterable[str] | None = None,
                  save_probability: bool = False, mode: str = "serial", jobs: int | None = None,
                  device: str | None = None, threads: int | None = None,
                  progress: Callable[[int, int, str], None] | None = None,
                  cancel: CancelToken | None = None) -> StageResult:
    """Segment every selected case and add the masks to the manifest (table ``seg_predictions``).

    A case whose mask is already listed is reused; an empty prediction counts as failed (it is
    reported, nothing is added).  ``outputs["table"]``: this run's rows.
    """
    import pandas as pd

    from ..runner import Task, run_tasks
    from .bundle import load_bundle

    config = config or InferenceConfig()
    model = load_bundle(model_dir, device="cpu")  # verifies the bundle before any task starts
    listed = _listed_paths(store)
    modalities = {ROLES.get(c, ("MR",))[0] for c in model.channels}
    rows, tasks = [], []
    for patient, tp in _selected(store, patients, timepoints):
        base = {"patient_id": patient.patient_id, "timepoint": tp.name, "reader": reader, "method": "monai"}
        out_rel = output_path(patient.patient_id, tp.name, reader, "monai")
        missing = [c for c in model.channels if not tp.has_image(c)]
        if missing and not _has_modality(tp, modalities):
            continue  # e.g. an ultrasound-only visit: nothing this model segments, not a failure
        if missing:
            rows.append({**base, "status": "failed", "message": f"missing channel(s) {missing}"})
            continue
        if out_rel in listed:
            rows.append({**base, "status": "exists", "path": out_rel, "message": "already segmented"})
            continue
        channels = {c: str(store.path(tp.image(c).path)) for c in model.channels}
        kwargs = {"study_root": str(store.root), "model_dir": str(Path(model_dir).resolve()),
                  "patient_id": patient.patient_id, "timepoint": tp.name, "channels": channels,
                  "out_rel": out_rel, "config": config.to_dict(), "save_probability": save_probability,
                  "device": device, "threads": threads}
        identity = {k: v for k, v in kwargs.items() if k not in ("study_root", "model_dir", "channels", "device",
                                                                  "threads")}
        tasks.append(Task(key=f"{patient.patient_id}/{tp.name}", function=f"{__name__}:predict_task",
                          kwargs=kwargs, inputs=tuple(channels.values()), version=model.weights_sha256,
                          identity=identity, meta=base))
    summary = run_tasks(tasks, store.work_dir("seg_predict"), mode=mode, jobs=jobs, stage="seg predict",
                        progress=progress, cancel=cancel)
    new_rows = []
    for task in tasks:
        base = task.meta
        if task.key in summary.failures:
            rows.append({**base, "status": "failed", "message": summary.failures[task.key]})
            continue
        value = summary.results[task.key]
        if value["empty"]:
            rows.append({**base, "status": "empty", "volume_ml": 0.0, "message": value["message"]})
            continue
        rows.append({**base, "status": "done", "path": value["path"], "volume_ml": value["volume_ml"],
                     "probability_path": value["probability_path"], "message": value["message"]})
        if value["path"] not in listed:
            new_rows.append({"patient_id": base["patient_id"], "timepoint": base["timepoint"], "kind": "segmentation",
                             "path": value["path"], "reader": reader, "method": "monai", "label": 1,
                             "reference": model.preprocess.reference_channel, "created": now_iso()})
    if new_rows:
        store.add_manifest_rows(new_rows)
    frame = pd.DataFrame(rows, columns=["patient_id", "timepoint", "reader", "method", "status", "path",
                                        "volume_ml", "probability_path", "message"])
    provenance = collect(step="seg predict", parameters={"reader": reader, **config.to_dict()},
                         extra={"model": model.identity, "runner": summary.as_dict()})
    store.write_table(PREDICTIONS_TABLE, store.merged(PREDICTIONS_TABLE, frame, ["patient_id", "timepoint", "reader"]),
                      provenance)
    store.audit("seg predict", target=str(model_dir), details={"added": len(new_rows), "failed": summary.failed})
    return _stage_result("seg predict", frame, PREDICTIONS_TABLE, failed_status=("failed", "empty"))


def _stage_result(stage: str, frame, table: str, failed_status=("failed",)) -> StageResult:
    """Rows with a ``status`` column -> the stage contract (``exists`` = reused from an earlier run)."""
    where = frame["patient_id"].astype(str) + "/" + frame["timepoint"].astype(str)
    bad = frame["status"].isin(failed_status)
    failed = {f"{w} ({s})" if s != "failed" else w: str(m) for w, s, m in
              zip(where[bad], frame.loc[bad, "status"], frame.loc[bad, "message"])}
    reused = int((frame["status"] == "exists").sum())
    return StageResult(stage, done=int(len(frame) - bad.sum() - reused), reused=reused, failed=failed,
                       tables=[table], outputs={"table": frame})


# ---- functional tumour volume -------------------------------------------------------------------
def roi_box(mask: sitk.Image, margin_mm: float) -> tuple[int, ...] | None:
    """Bounding box (x0, y0, z0, x1, y1, z1) of a mask grown by ``margin_mm``; None if empty."""
    array = sitk.GetArrayViewFromImage(mask) > 0
    if not array.any():
        return None
    idx = np.argwhere(array)
    pad = np.ceil(margin_mm / np.asarray(tuple(reversed(mask.GetSpacing())))).astype(int)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + 1 + pad, array.shape)
    return (int(lo[2]), int(lo[1]), int(lo[0]), int(hi[2]), int(hi[1]), int(hi[0]))


def ftv_study(store: StudyStore, *, config: FTVConfig | None = None, roi_reader: str | None = None,
              roi_method: str | None = None, margin_mm: float = 10.0, reader: str = "ftv",
              patients: Iterable[str] | None = None, timepoints: Iterable[str] | None = None,
              save_maps: bool = True, cancel: CancelToken | None = None) -> StageResult:
    """FTV for every case with DCE pre/early/late; the box is ``roi_reader``'s mask + margin (or the image).

    Writes table ``ftv``; ``outputs["table"]``: this run's rows.
    """
    import pandas as pd

    config = config or FTVConfig()
    listed = _listed_paths(store)
    # a visit without MR (e.g. ultrasound only) has no DCE to compute FTV from: not a failure
    selected = [(p, tp) for p, tp in _selected(store, patients, timepoints) if _has_modality(tp, {"MR"})]
    rows, new_rows = [], []
    with Progress(len(selected), "seg ftv") as bar:
        for patient, tp in selected:
            if cancel is not None:
                cancel.check()
            base = {"patient_id": patient.patient_id, "timepoint": tp.name, "reader": reader}
            try:
                row = _ftv_case(store, patient, tp, config, roi_reader, roi_method, margin_mm, reader, listed,
                                save_maps, new_rows)
                rows.append({**base, **row})
            except (InputError, KeyError, ValueError) as exc:
                rows.append({**base, "status": "failed", "message": str(exc)})
            bar.update(1, f"{patient.patient_id}/{tp.name}")
    if new_rows:
        store.add_manifest_rows(new_rows)
    frame = pd.DataFrame(rows)
    frame = _with_ftv_change(frame)
    provenance = collect(step="seg ftv", parameters={**config.to_dict(), "roi_reader": roi_reader,
                                                     "roi_method": roi_method, "margin_mm": margin_mm})
    store.write_table(FTV_TABLE, store.merged(FTV_TABLE, frame, ["patient_id", "timepoint", "reader"]), provenance)
    return _stage_result("seg ftv", frame, FTV_TABLE)


def _ftv_case(store: StudyStore, patient, tp, config, roi_reader, roi_method, margin_mm, reader, listed, save_maps,
              new_rows) -> dict[str, Any]:
    missing = [k for k in ("dce_pre", "dce_early", "dce_late") if not tp.has_image(k)]
    if missing:
        raise InputError(f"missing DCE phase(s) {missing}")
    paths = [store.path(tp.image(k).path) for k in ("dce_pre", "dce_early", "dce_late")]
    pre, early, late = (read_image(p) for p in paths)
    box, roi_source = None, "whole image"
    if roi_reader:
        seg = tp.reference_segmentation(reader=roi_reader, method=roi_method)
        if seg is None:
            raise InputError(f"no segmentation by reader {roi_reader!r} for the FTV box")
        mask = sitk.Resample(read_image(store.path(seg.path)), pre, sitk.Transform(),
                             sitk.sitkNearestNeighbor, 0)
        box = roi_box(mask, margin_mm)
        roi_source = f"{roi_reader} + {margin_mm:g} mm"
    res = functional_tumour_volume(pre, early, late, box=box, config=config)
    out_rel = output_path(patient.patient_id, tp.name, reader, "ftv")
    row = {"ftv_cm3": res.volume_cm3, "n_voxels": res.n_voxels,
           **{f"ftv_{k}_cm3": v for k, v in res.ser_volumes_cm3.items()},
           "box": json.dumps(list(box) if box else None), "roi": roi_source, "path": None}
    if res.n_voxels == 0:
        return {**row, "status": "empty", "message": "no voxel above the thresholds (FTV 0 cm3)"}
    if out_rel in listed:
        return {**row, "status": "exists", "path": out_rel, "message": "mask already in the study (kept)"}
    write_image(res.mask, store.path(out_rel))
    if save_maps:
        write_image(res.pe, store.path(out_rel.replace(".nii.gz", "_pe.nii.gz")))
        write_image(res.ser, store.path(out_rel.replace(".nii.gz", "_ser.nii.gz")))
    _write_provenance(store, out_rel, collect(step="seg ftv", parameters={**config.to_dict(), "box": box},
                                              inputs=paths, base=store.root))
    new_rows.append({"patient_id": patient.patient_id, "timepoint": tp.name, "kind": "segmentation",
                     "path": out_rel, "reader": reader, "method": "ftv", "label": 1, "reference": "dce_early",
                     "created": now_iso()})
    return {**row, "status": "done", "path": out_rel, "message": f"FTV {res.volume_cm3:.2f} cm3"}


def _with_ftv_change(frame):
    if frame.empty or "ftv_cm3" not in frame:
        return frame
    frame = frame.copy()
    frame["ftv_change_pct"] = np.nan
    for _, group in frame.groupby("patient_id"):
        group = group.sort_values("timepoint", key=lambda s: s.map(timepoint_order))
        base = group["ftv_cm3"].iloc[0]
        if base and base > 0:
            frame.loc[group.index, "ftv_change_pct"] = 100.0 * (group["ftv_cm3"] - base) / base
    return frame


# ---- measurements -------------------------------------------------------------------------------
def measure_study(store: StudyStore, *, readers: Iterable[str] | None = None, methods: Iterable[str] | None = None,
                  patients: Iterable[str] | None = None, timepoints: Iterable[str] | None = None) -> StageResult:
    """Volume, diameters, change from baseline and RECIST category for every segmentation series
    (one segmentation per timepoint, reader and method: ``Timepoint.reference_segmentation``; 2D
    outlines get an area in mm2 instead of a volume, see ``measurements.measure_mask``).

    Writes table ``tumour_measurements`` (a run over a subset keeps the other rows);
    ``outputs["table"]``: this run's rows.
    """
    import pandas as pd

    readers = set(readers) if readers else None
    methods = set(methods) if methods else None
    series: dict[tuple[str, str, str], list] = {}
    for patient, tp in _selected(store, patients, timepoints):
        for reader, method in sorted({(s.reader, s.method) for s in tp.segmentations}):
            if (readers and reader not in readers) or (methods and method not in methods):
                continue
            series.setdefault((patient.patient_id, reader, method), []).append(tp)
    rows = []
    for (pid, reader, method), items in sorted(series.items()):
        measured, failed = [], []
        for tp in sorted(items, key=lambda t: timepoint_order(t.name)):
            base = {"patient_id": pid, "timepoint": tp.name, "reader": reader, "method": method, "path": None}
            try:
                seg = tp.reference_segmentation(reader, method)  # several files of one series: refused
                base["path"] = seg.path
                mask = read_image(store.path(seg.path))
                measured.append({**base, **measure_mask(mask, label=seg.label), "status": "done"})
            except InputError as exc:
                failed.append({**base, "status": "failed", "message": str(exc)})
        rows += change_table(measured) + failed
    columns = ["patient_id", "timepoint", "reader", "method", "volume_ml", "area_mm2", "longest_inplane_diameter_mm",
               "diameter_slice", "max_3d_diameter_mm", "baseline_timepoint", "diameter_change_pct",
               "volume_change_pct", "area_change_pct", "recist", "status", "message", "path"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["diameter_slice"] = frame["diameter_slice"].astype("Int64")
    subset = any(x is not None for x in (readers, methods, patients, timepoints))
    stored = store.merged(MEASUREMENTS_TABLE, frame, ["patient_id", "timepoint", "reader", "method"]) if subset else frame
    store.write_table(MEASUREMENTS_TABLE, stored,
                      collect(step="seg measure", parameters={"readers": sorted(readers or []),
                                                              "methods": sorted(methods or [])}))
    return _stage_result("seg measure", frame, MEASUREMENTS_TABLE)

