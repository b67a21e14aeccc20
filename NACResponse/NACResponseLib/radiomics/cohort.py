"""Cohort radiomics: plan one task per (image, mask), run them on the runner, write the tables.

Pairing rule: every segmentation of a timepoint is paired with every image of that timepoint
that lies on the mask's voxel grid (same dimension, size, spacing, origin, direction), e.g. a
DCE-grid mask with dce_pre/dce_early/dce_late/t2w but not with a coarser DWI/ADC grid.  Name
images explicitly (``images=[...]``) to pair them regardless (a grid mismatch is then a recorded
failure), or set ``resample_masks=True`` to let pyradiomics resample the mask onto each image's
grid with nearest neighbour (its ``correctMask`` setting).  A mask is never paired with an image of
another modality than its reference image (an ultrasound outline with an MR series).  2D images (ultrasound, mammography)
use the 2D parameter set.  Nothing is skipped silently: a mask is always paired with its
reference image (so a mask off that grid, of the wrong dimension or unreadable is a failure row),
an unreadable image is paired with every mask of its timepoint, and a mask whose reference image
is not in the manifest gets a failure row saying so.

Two things keep the runner's throughput close to the number of cores: ROIs are handed out
largest first (an estimate from the mask's label volume and the number of filtered images, see
:func:`roi_cost`), and a rerun in which every ROI was already finished, under exactly the same
task digests and parameters as the stored tables (the ``fingerprint`` in their provenance),
returns the stored tables without assembling or rewriting them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..progress import CancelToken, ProgressCallback
from ..stage import StageResult
from ..study.store import StudyStore
from .params import DEFAULT, DEFAULT_2D, SHIPPED, load_params, params_hash, shipped_path, with_settings
from .tables import ID_COLUMNS, long_table, wide_table

log = logging.getLogger(__name__)

TASK_FUNCTION = "NACResponseLib.radiomics.extractor:extract_task"
TABLE_LONG, TABLE_WIDE, TABLE_FAILURES = "radiomics", "radiomics_wide", "radiomics_failures"
TABLES = (TABLE_LONG, TABLE_WIDE, TABLE_FAILURES)
# Bump when the table assembly (tables.py, _assemble) changes: stored tables are then rebuilt.
TABLES_VERSION = 1


@dataclass(frozen=True)
class RoiSpec:
    """One (image, mask, label) pair of the cohort; paths are relative to the study folder."""

    patient_id: str
    timepoint: str
    image: str  # image key, e.g. dce_early, dwi_b800, mg_cc_L
    reader: str
    method: str
    label: int
    image_path: str
    mask_path: str
    dimension: int = 3
    problem: str | None = None  # known at planning: the task fails with this message

    @property
    def key(self) -> str:
        return f"{self.patient_id}/{self.timepoint}/{self.image}/{self.reader}/{self.method}/{self.label}"

    def id_row(self) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "timepoint": self.timepoint, "image": self.image,
                "reader": self.reader, "method": self.method, "label": int(self.label)}


class CohortRadiomics(StageResult):
    """What :func:`extract_cohort` produced: the stage contract (done / reused / failed ROIs,
    tables written) plus the tables themselves.

    ``long``, ``wide`` and ``failures`` are pandas DataFrames; when a rerun changed nothing
    (``reused_tables``) they are the stored tables, read from the study on first access.
    ``summary`` is the runner's :class:`~NACResponseLib.runner.RunSummary`.
    """

    def __init__(self, long=None, wide=None, failures=None, summary=None, provenance: dict[str, Any] | None = None,
                 rois: list[RoiSpec] | None = None, *, store=None):
        super().__init__("radiomics", done=summary.computed if summary else 0, reused=summary.reused if summary else 0,
                         failed=dict(summary.failures) if summary else {})
        self._frames = {TABLE_LONG: long, TABLE_WIDE: wide, TABLE_FAILURES: failures}
        self._store = store
        self.summary = summary  # runner.RunSummary
        self.provenance = provenance or {}
        self.rois = rois or []

    @property
    def reused_tables(self) -> bool:
        return self._store is not None

    def _frame(self, name: str):
        if self._frames[name] is None and self._store is not None:
            self._frames[name] = self._store.read_table(name)
        return self._frames[name]

    @property
    def long(self):
        return self._frame(TABLE_LONG)

    @property
    def wide(self):
        return self._frame(TABLE_WIDE)

    @property
    def failures(self):
        return self._frame(TABLE_FAILURES)


_grid_cache: dict[tuple[str, int, int], tuple | None] = {}


def _grid(path: Path) -> tuple | None:
    """(dimension, size, spacing, origin, direction) from the header only, or None if unreadable.

    Cached per process on (path, size, mtime) like the file hashes, so planning a rerun (or the
    GUI's next case) does not reread every header.
    """
    import SimpleITK as sitk

    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _grid_cache:
        return _grid_cache[key]
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    grid = (reader.GetDimension(), tuple(reader.GetSize()), tuple(round(s, 4) for s in reader.GetSpacing()),
            tuple(round(o, 3) for o in reader.GetOrigin()), tuple(round(d, 4) for d in reader.GetDirection()))
    _grid_cache[key] = grid
    return grid


def plan_rois(store: StudyStore, *, images: list[str] | None = None, readers: list[str] | None = None,
              methods: list[str] | None = None, timepoints: list[str] | None = None,
              patients: list[str] | None = None, resample_masks: bool = False) -> list[RoiSpec]:
    """The (image, mask) pairs to extract, in cohort order (see the module docstring for the rule)."""
    grids: dict[Path, tuple | None] = {}

    def grid(rel: str):
        path = store.path(rel)
        if path not in grids:
            grids[path] = _grid(path) if path.is_file() else None
        return grids[path]

    cohort = store.cohort
    if patients:
        missing = sorted(set(patients) - set(cohort.patients))
        if missing:
            raise InputError(f"{store.manifest_path}: no patient(s) {missing} in this study")
    out: list[RoiSpec] = []
    for patient, tp, seg in cohort.select_segmentations(patients=patients, timepoints=timepoints, readers=readers,
                                                        methods=methods):
        mask_grid = grid(seg.path)
        # a mask drawn on one modality (e.g. ultrasound) is never paired with another's image
        drawn_on = tp.image(seg.reference).modality if tp.has_image(seg.reference) else None
        for img in tp.images:
            if drawn_on is not None and img.modality != drawn_on:
                continue
            if images is not None:
                if img.key not in images and img.role not in images:
                    continue
            elif img.key != seg.reference:  # the reference pair always stays: its failure names why
                img_grid = grid(img.path)
                if mask_grid is None:
                    continue  # unreadable mask: reported once, on its reference pair
                if img_grid is not None and (img_grid[0] != mask_grid[0]
                                             or (img_grid != mask_grid and not resample_masks)):
                    continue
            g = grid(img.path)
            out.append(RoiSpec(patient.patient_id, tp.name, img.key, seg.reader, seg.method, int(seg.label),
                               img.path, seg.path, g[0] if g else 3))
        if not tp.has_image(seg.reference) and (images is None or seg.reference in images):
            out.append(RoiSpec(patient.patient_id, tp.name, seg.reference, seg.reader, seg.method,
                               int(seg.label), "", seg.path, mask_grid[0] if mask_grid else 3,
                               problem=f"{seg.path}: its reference image {seg.reference!r} is not in the "
                                       f"manifest for {patient.patient_id}/{tp.name}; nothing to extract on"))
    return out


def planned_failure(problem: str) -> None:
    """Runner task of a pair that cannot be extracted, so its failure row is recorded like any other."""
    raise InputError(problem)


def _resolve_params(params, params_2d, resample_masks: bool) -> tuple[dict, dict, dict[str, Any]]:
    """Load both parameter sets and describe them for provenance (source file, its hash, dict hash)."""
    from ..provenance import sha256_file

    described = {}
    loaded = []
    for name, src, default in (("params", params, DEFAULT), ("params_2d", params_2d, DEFAULT_2D)):
        src = default if src is None else src
        p = load_params(src)
        if resample_masks:
            p = with_settings(p, correctMask=True)
        info: dict[str, Any] = {"parameters": p, "sha256": params_hash(p)}
        if not isinstance(src, dict):
            path = shipped_path(src) if str(src) in SHIPPED else Path(src)
            info["source"] = str(src)
            info["file_sha256"] = sha256_file(path)
        described[name] = info
        loaded.append(p)
    return loaded[0], loaded[1], described


def task_version() -> str:
    """What computed a radiomics result, for its digest: pyradiomics' version and ours (the package
    and its pre-processing), so an upgrade of either recomputes instead of reusing old values."""
    from .. import __version__
    from ..provenance import radiomics_version
    from .ibsi_preprocessing import PREPROCESSING_VERSION

    return f"{radiomics_version()};nacresponse={__version__};preprocessing={PREPROCESSING_VERSION}"


def make_tasks(store: StudyStore, rois: list[RoiSpec], params3d: dict, params2d: dict):
    """Runner tasks for ``rois``; the digest uses study-relative names, so a moved study keeps results."""
    from ..runner import Task

    version = task_version()
    tasks = []
    for roi in rois:
        if roi.problem is not None:
            tasks.append(Task(key=roi.key, function=f"{__name__}:planned_failure", kwargs={"problem": roi.problem},
                              identity={"roi": roi.key, "problem": roi.problem}, version=version, meta=roi.id_row()))
            continue
        p = params2d if roi.dimension == 2 else params3d
        image, mask = store.path(roi.image_path), store.path(roi.mask_path)
        tasks.append(Task(
            key=roi.key, function=TASK_FUNCTION,
            kwargs={"image": str(image), "mask": str(mask), "params": p, "label": roi.label,
                    "image_name": roi.image_path, "mask_name": roi.mask_path},
            inputs=tuple(str(x) for x in (image, mask) if x.is_file()),
            identity={"roi": roi.key, "label": roi.label, "params": params_hash(p), "image": roi.image_path,
                      "mask": roi.mask_path},
            version=version, meta=roi.id_row()))
    return tasks


def _n_images(params: dict) -> int:
    """Filtered images pyradiomics computes features on (Original, 8 or 4 wavelet bands, LoG sigmas...)."""
    count = 0
    for name, options in (params.get("imageType") or {}).items():
        options = options or {}
        if name == "Wavelet":
            count += 4 if (params.get("setting") or {}).get("force2D") else 8
        elif name == "LoG":
            count += max(1, len(options.get("sigma") or []))
        else:
            count += 1
    return max(count, 1)


def roi_cost(task) -> float:
    """Estimated relative extraction time of a radiomics task: label volume x filtered images.

    Texture matrices dominate and scale with the ROI's voxels after resampling, so the label's
    physical volume in resampled voxels is the estimate (mask read once per file, cheap next to
    an extraction); an unreadable mask costs 0 (it fails fast).
    """
    kw = task.kwargs
    if "mask" not in kw:  # a planned failure
        return 0.0
    volume = _label_volumes(kw["mask"]).get(int(kw["label"]), 0.0)
    spacing = (kw["params"].get("setting") or {}).get("resampledPixelSpacing")
    if spacing and all(spacing):
        volume /= float(np.prod(spacing))
    return volume * _n_images(kw["params"])


_volume_cache: dict[tuple[str, int, int], dict[int, float]] = {}


def _label_volumes(path: str) -> dict[int, float]:
    """{label: physical volume (voxel count x voxel volume)} of a mask file, cached by (path, size, mtime)."""
    import os

    import SimpleITK as sitk

    try:
        st = os.stat(path)
    except OSError:
        return {}
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _volume_cache:
        try:
            mask = sitk.ReadImage(path)
        except RuntimeError:
            return {}
        labels, counts = np.unique(sitk.GetArrayViewFromImage(mask), return_counts=True)
        voxel = float(np.prod(mask.GetSpacing()))
        _volume_cache[key] = {int(v): float(c) * voxel for v, c in zip(labels, counts) if v == int(v)}
    return _volume_cache[key]


def fingerprint(rois: list[RoiSpec], digests: dict[str, str], parameters: dict[str, Any]) -> str:
    """What the tables are a function of: the ordered ROI task digests (inputs, parameters,
    pyradiomics version), the run parameters and the table-assembly version."""
    from .. import __version__
    from ..provenance import sha256_json

    return sha256_json({"tasks": [[r.key, digests[r.key]] for r in rois], "parameters": parameters,
                        "tables_version": TABLES_VERSION, "nacresponse": __version__})


def _stored_provenance(store: StudyStore, value: str) -> dict[str, Any] | None:
    """The stored tables' provenance when all three exist and were written from exactly this
    fingerprint, else None."""
    found = None
    for name in TABLES:
        if not store.has_table(name):
            return None
        try:
            prov = store.table_provenance(name)
        except Exception:  # unreadable table: rebuild it
            return None
        if prov.get("fingerprint") != value:
            return None
        found = found or prov
    return found


def extract_cohort(store: StudyStore, params=None, params_2d=None, *, jobs: int | None = None, scheduler=None,
                   mode: str | None = None, images: list[str] | None = None, readers: list[str] | None = None,
                   methods: list[str] | None = None, timepoints: list[str] | None = None,
                   patients: list[str] | None = None, resample_masks: bool = False,
                   progress: ProgressCallback | None = None, progress_mode: str | None = None,
                   cancel: CancelToken | None = None, write: bool = True) -> CohortRadiomics:
    """Extract radiomics for a study and (``write=True``) store tables ``radiomics``,
    ``radiomics_wide`` and ``radiomics_failures`` with provenance.

    ``params``/``params_2d``: shipped name, parameter file or dict (defaults: ``breast`` and
    ``breast_2d``).  Runner options as in :func:`NACResponseLib.runner.run_tasks`.  Failed ROIs are
    listed in the failures table and the summary; the rest of the cohort is still extracted.
    """
    from ..provenance import collect
    from ..runner import prestart_workers, run_tasks

    preload = ("NACResponseLib.radiomics.extractor", "radiomics.featureextractor")
    if mode in (None, "process") and scheduler is None:
        prestart_workers(preload)  # the pool's fork server imports pyradiomics while we plan
    p3, p2, described = _resolve_params(params, params_2d, resample_masks)
    rois = plan_rois(store, images=images, readers=readers, methods=methods, timepoints=timepoints,
                     patients=patients, resample_masks=resample_masks)
    if not rois:
        raise InputError(f"{store.root}: no (image, mask) pair to extract (check --images/--readers/--timepoints "
                         "and that the study has segmentations)")
    tasks = make_tasks(store, rois, p3, p2)
    run_parameters = {"params_sha256": described["params"]["sha256"],
                      "params_2d_sha256": described["params_2d"]["sha256"],
                      "images": images, "readers": readers, "methods": methods, "timepoints": timepoints,
                      "patients": patients, "resample_masks": resample_masks}
    # the run's row: ended below on success; by recorded_run as cancelled/failed on any error
    with store.recorded_run("radiomics", run_parameters, record=write) as run:
        summary = run_tasks(tasks, store.work_dir("radiomics"), mode=mode, jobs=jobs, scheduler=scheduler,
                            stage="radiomics", progress=progress, progress_mode=progress_mode, cancel=cancel,
                            preload=preload, cost=roi_cost)
        run_id = run.run_id
        status = "done" if not summary.failed else "done_with_failures"
        parameters = {**run_parameters, "parameter_sets": described}
        tables_print = fingerprint(rois, summary.digests, parameters)
        stored = _stored_provenance(store, tables_print) if write and summary.unchanged else None
        if stored is not None:
            # Nothing ran and the stored tables come from exactly these tasks: keep them as they are.
            run.finish(status, {**summary.as_dict(), "tables": "unchanged"})
            store.audit("radiomics", target=f"table:{TABLE_LONG}",
                        details={"run_id": run_id, "done": summary.done, "failed": summary.failed, "tables": "unchanged"})
            return CohortRadiomics(summary=summary, provenance=stored, rois=rois, store=store)
        result = _assemble(rois, summary)
        merged_from = None
        subset = any(x is not None for x in (images, readers, methods, timepoints, patients))
        merged = _merge_stored_rows(store, result, parameters, resample_masks) if write and subset else None
        if merged is not None:
            long, wide, failures, merged_from = merged
            result = CohortRadiomics(long, wide, failures, summary, rois=rois)
        inputs = sorted({str(store.path(r.image_path)) for r in rois} | {str(store.path(r.mask_path)) for r in rois})
        inputs = [p for p in inputs if Path(p).is_file()]
        result.provenance = collect(
            step="radiomics", parameters=parameters, inputs=inputs,
            base=store.root, extra={"run_id": run_id, "summary": summary.as_dict(), "fingerprint": tables_print,
                                    "merged_with_run": merged_from,
                                    "n_features": len(result.long.columns) - 6, "naming": "see radiomics.tables"})
        if write:
            store.write_tables({TABLE_LONG: result.long, TABLE_WIDE: result.wide, TABLE_FAILURES: result.failures},
                               result.provenance)
            result.tables = list(TABLES)
            run.finish(status, summary.as_dict())
            store.audit("radiomics", target=f"table:{TABLE_LONG}",
                        details={"run_id": run_id, "done": summary.done, "failed": summary.failed})
        return result


def _merge_stored_rows(store: StudyStore, result: CohortRadiomics, parameters: dict[str, Any], resample_masks: bool):
    """A run over a subset (some patients, readers, methods, timepoints or images; e.g. the GUI's
    current case) must not narrow the study tables: keep every stored row of an ROI this run did
    not plan, in the order a whole-cohort run writes them.

    Returns (long, wide, failures, run id of the stored tables), or None when none are stored.
    Refuses to mix rows extracted with different parameter files.
    """
    if not all(store.has_table(name) for name in TABLES):
        return None
    stored_prov = store.table_provenance(TABLE_LONG)
    stored_params = stored_prov.get("parameters", {})
    for key in ("params_sha256", "params_2d_sha256", "resample_masks"):
        if stored_params.get(key) != parameters.get(key):
            raise InputError(f"{store.table_path(TABLE_LONG)}: the stored radiomics tables were extracted with other "
                             f"parameters ({key} differs); rerun the whole cohort instead of a subset")
    planned = [tuple(r.id_row().values()) for r in result.rois]
    long = store.merged(TABLE_LONG, result.long, list(ID_COLUMNS), planned)
    failures = store.merged(TABLE_FAILURES, result.failures, list(ID_COLUMNS), planned)
    rank = {roi.key: i for i, roi in enumerate(plan_rois(store, resample_masks=resample_masks))}
    long, failures = (_in_order(frame, rank) for frame in (long, failures))
    return long, wide_table(long), failures, stored_prov.get("run_id")


def _in_order(frame, rank: dict[str, int]):
    """Rows in whole-cohort plan order (rows the plan does not know last, in their order)."""
    keys = ["/".join(str(v) for v in row) for row in frame[list(ID_COLUMNS)].itertuples(index=False, name=None)]
    order = sorted(range(len(frame)), key=lambda i: rank.get(keys[i], len(rank)))
    return frame.iloc[order].reset_index(drop=True)


def _assemble(rois: list[RoiSpec], summary) -> CohortRadiomics:
    import pandas as pd

    ok = [r for r in rois if r.key in summary.results]
    long = long_table([r.id_row() for r in ok], [summary.results[r.key] for r in ok])
    wide = wide_table(long)
    failed = [r for r in rois if r.key in summary.failures]
    failures = pd.DataFrame([{**r.id_row(), "image_path": r.image_path, "mask_path": r.mask_path,
                              "error": summary.failures[r.key]} for r in failed],
                            columns=["patient_id", "timepoint", "image", "reader", "method", "label", "image_path",
                                     "mask_path", "error"])
    return CohortRadiomics(long=long, wide=wide, failures=failures, summary=summary, rois=rois)


def extract_case(store: StudyStore, patient_id: str, params=None, params_2d=None, *, jobs: int | None = None,
                 scheduler=None, mode: str | None = None, images: list[str] | None = None,
                 readers: list[str] | None = None, timepoints: list[str] | None = None,
                 progress: ProgressCallback | None = None, cancel: CancelToken | None = None):
    """Long feature table of one patient (all its ROIs in parallel), without rewriting the study
    tables; results are cached like a cohort run, so a later cohort run reuses them."""
    result = extract_cohort(store, params, params_2d, jobs=jobs, scheduler=scheduler, mode=mode, images=images,
                            readers=readers, timepoints=timepoints, patients=[patient_id], progress=progress,
                            progress_mode="none" if progress is None else None, cancel=cancel, write=False)
    return result.long


__all__ = ["CohortRadiomics", "RoiSpec", "extract_case", "extract_cohort", "fingerprint", "make_tasks", "plan_rois",
           "roi_cost"]
