"""Deep features for a whole study: ResNet-50 descriptors and segmentation-bottleneck features.

ResNet-50: each (patient, timepoint, reader) ROI becomes one 3x224x224 input (see slices.py);
inputs are run through the network in batches.  Bottleneck: the segmentation network's deepest
map is computed once per patient and timepoint and pooled in each reader's mask (bottleneck.py).

Every finished vector is stored atomically under ``<study>/cache/<table>/<key>.npz`` where the
key is :func:`NACResponseLib.provenance.result_digest` of the ROI's image and mask contents and
the parameters (the same keying as the runner's radiomics tasks): a cancelled run resumes, a
replaced image, corrected mask or changed parameter is recomputed, and an unchanged rerun reuses
everything.  A failing ROI is recorded while the others go on.  The wide tables (tables.py) are
written with provenance, which says when the ResNet weights were random (testing only).

The cohort runner is not used here: it would load the model in each task, whereas a 100 MB
network is loaded once and fed batches.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from ..progress import CancelToken, Progress
from ..provenance import collect, result_digest
from ..stage import StageResult
from ..study.store import StudyStore
from .bottleneck import MIN_COVERAGE, pool_in_mask
from .cases import (
    DEFAULT_CHANNELS,
    Case,
    cohort_cases,
    describe_failure,
    input_paths,
    read_case_images,
    read_case_mask,
    resolve_image,
)
from .slices import DEFAULT_MARGIN_MM, INPUT_SIZE, SliceInput, prepare_input
from .tables import (
    BOTTLENECK_TABLE,
    RESNET_SLICES_TABLE,
    RESNET_TABLE,
    bottleneck_feature_names,
    resnet_feature_names,
    wide_from_vectors,
)

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # 2: crops are low-pass filtered before downsampling (slices.CropWindow.sample)


@dataclass(frozen=True)
class ResNetSettings:
    """What defines the features (hashed: changing any of these gives new features)."""

    channels: tuple[str, ...] = DEFAULT_CHANNELS
    average_neighbours: bool = False
    margin_mm: float = DEFAULT_MARGIN_MM
    size: int = INPUT_SIZE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


def case_files(store: StudyStore, table: str, cases: list[Case], channels, identity: dict[str, Any],
               suffix: str) -> dict[str, Path]:
    """Where each ROI's result lives: keyed by its input file contents and the parameters."""
    folder = store.cache_dir(table)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for case in cases:
        inputs = [p for p in input_paths(store, [case], channels) if p.is_file()]
        key = result_digest(f"deep.{table}", {**identity, "case": case.key, "label": case.segmentation.label},
                            inputs, str(CACHE_VERSION))
        out[case.key] = folder / f"{key}{suffix}"
    return out


def _result(table: str, computed: int, cached: int, failures: list[dict[str, str]], frame, path,
            provenance: dict[str, Any], tables: list[str]) -> StageResult:
    failed = {f"{f['patient_id']}/{f['timepoint']}/{f['reader']}": f["error"] for f in failures}
    return StageResult(f"features deep {table}", done=computed, reused=cached, failed=failed, tables=tables,
                       outputs={"table": frame, "path": path, "provenance": provenance, "failures": failures})


def case_input(store: StudyStore, case: Case, settings: ResNetSettings) -> SliceInput:
    """The network input of one ROI (errors name the patient, timepoint and file)."""
    images, names = read_case_images(store, case, settings.channels)
    mask = read_case_mask(store, case)
    try:
        return prepare_input(images, mask, names=names, average_neighbours=settings.average_neighbours,
                             margin_mm=settings.margin_mm, size=settings.size, label=case.segmentation.label)
    except InputError as exc:
        raise InputError(f"{case.name} ({case.segmentation.path}): {exc}") from None


def _save_vector(path: Path, vector: np.ndarray, item: SliceInput) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, vector=vector.astype(np.float32), slice_index=np.array(item.slice_index),
                 slices=np.array(item.slices), centre=np.array(item.window.centre),
                 half_mm=np.array(item.window.half_mm), channels=np.array(item.channels))


def _load_vector(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def extract_resnet50(store: StudyStore, *, weights: str | Path | None = None, expected_sha256: str | None = None,
                     random_weights: bool = False, settings: ResNetSettings | None = None,
                     readers: list[str] | None = None, timepoints: list[str] | None = None,
                     batch_size: int = 8, mode: str = "auto", precision: str = "auto",
                     threads: int | None = None, gradcam: bool = False,
                     callback: Callable[[int, int, str], None] | None = None,
                     cancel: CancelToken | None = None) -> StageResult:
    """ResNet-50 features for every ROI of a study; writes ``deep_resnet50`` (+ ``_slices``).

    ``gradcam`` also writes a Grad-CAM map per ROI (top ImageNet class) to
    ``<study>/deep/gradcam/<patient>/<timepoint>/<reader>__resnet50.nii.gz``, aligned with the
    DCE volume.  ``outputs``: ``table`` (None when no ROI succeeded), ``path``, ``provenance`` and
    ``failures`` (rows naming patient, timepoint and reader).  Raises only on bad arguments or weights.
    """
    from .engine import FeatureEngine
    from .resnet import load_resnet50

    settings = settings or ResNetSettings()
    cases = cohort_cases(store.cohort, readers=readers, timepoints=timepoints, channel=settings.channels[0])
    if not cases:
        raise InputError(f"{store.root}: no segmentation matches readers={readers} timepoints={timepoints}; "
                         "deep features need a tumour mask per timepoint")
    model, weights_info = load_resnet50(weights, expected_sha256=expected_sha256, random_weights=random_weights)
    engine = FeatureEngine(model, batch_size=batch_size, mode=mode, precision=precision, threads=threads)
    identity = {"settings": settings.to_dict(), "weights_sha256": weights_info.get("weights_sha256"),
                "random_weights": weights_info["random_weights"], "seed": weights_info.get("seed"),
                "precision": precision, "cache_version": CACHE_VERSION}
    files = case_files(store, RESNET_TABLE, cases, settings.channels, identity, ".npz")

    failures: list[dict[str, str]] = []
    computed = cached = 0
    pending: list[tuple[Case, SliceInput]] = []

    def flush() -> None:
        nonlocal computed
        if not pending:
            return
        vectors = engine(np.stack([item.array for _, item in pending]))
        for (case, item), vector in zip(pending, vectors):
            _save_vector(files[case.key], vector, item)
            computed += 1
        if gradcam:
            _write_gradcams(store, model, pending, failures)
        pending.clear()

    with Progress(len(cases), "deep features: ResNet-50", callback=callback) as progress:
        for case in cases:
            if cancel is not None:
                cancel.check()
            if files[case.key].is_file():
                cached += 1
                if gradcam and not gradcam_path(store, case).is_file():
                    try:
                        _write_gradcams(store, model, [(case, case_input(store, case, settings))], failures)
                    except Exception as exc:
                        failures.append(describe_failure(case, exc))
                progress.update(1, case.name)
                continue
            try:
                pending.append((case, case_input(store, case, settings)))
            except Exception as exc:  # a bad ROI is recorded; the cohort goes on
                failures.append(describe_failure(case, exc))
                log.warning("%s", failures[-1]["error"])
            if len(pending) >= engine.batch_size:
                flush()
            progress.update(1, case.name)
        flush()

    vectors, slice_rows, done = {}, [], []
    for case in cases:
        path = files[case.key]
        if not path.is_file():
            continue
        done.append(case)
        data = _load_vector(path)
        vectors[(case.patient_id, case.reader, case.timepoint)] = data["vector"]
        slice_rows.append({"patient_id": case.patient_id, "timepoint": case.timepoint, "reader": case.reader,
                           "method": case.segmentation.method, "mask": case.segmentation.path,
                           "slice_index": int(data["slice_index"]),
                           "slices": ",".join(str(int(s)) for s in data["slices"]),
                           "centre_row": float(data["centre"][0]), "centre_col": float(data["centre"][1]),
                           "half_window_mm": float(data["half_mm"]),
                           "channels": ",".join(str(c) for c in data["channels"])})
    provenance = collect(step="features deep resnet50", parameters=identity, base=store.root,
                         inputs=input_paths(store, done, settings.channels), extra={
        "weights": weights_info, "engine": engine.settings, "failures": failures,
        "n_rois": len(slice_rows), "feature_names": "resnet50_0000..resnet50_2047"})
    if weights_info["random_weights"]:
        provenance["warning"] = "RANDOM WEIGHTS: features for testing only, not ImageNet descriptors"
    if not vectors:
        return _result(RESNET_TABLE, computed, cached, failures, None, None, provenance, [])
    import pandas as pd

    table = wide_from_vectors(vectors, resnet_feature_names(), sorted({c.timepoint for c in cases}))
    paths = store.write_tables({RESNET_TABLE: table, RESNET_SLICES_TABLE: pd.DataFrame(slice_rows)}, provenance)
    store.audit("features deep resnet50", target=RESNET_TABLE,
                details={"rois": len(slice_rows), "failures": len(failures),
                         "random_weights": weights_info["random_weights"]})
    return _result(RESNET_TABLE, computed, cached, failures, table, paths[RESNET_TABLE], provenance,
                   [RESNET_TABLE, RESNET_SLICES_TABLE])


def _load_model(model):
    from ..segmentation import load_bundle

    return load_bundle(model, device="cpu") if isinstance(model, str | Path) else model


def extract_bottleneck(store: StudyStore, model, *, readers: list[str] | None = None,
                       timepoints: list[str] | None = None, min_coverage: float = MIN_COVERAGE,
                       callback: Callable[[int, int, str], None] | None = None,
                       cancel: CancelToken | None = None) -> StageResult:
    """Bottleneck features for every ROI of a study; writes ``deep_bottleneck``.

    ``model`` is a segmentation bundle folder (``nacresponse seg train`` output) or a loaded
    :class:`~NACResponseLib.segmentation.SegmentationModel`.  ``outputs`` as in :func:`extract_resnet50`.
    """
    from ..segmentation import bottleneck_feature_map, mask_on_grid

    seg_model = _load_model(model)
    cases = cohort_cases(store.cohort, readers=readers, timepoints=timepoints,
                         channel=seg_model.preprocess.reference_channel)
    if not cases:
        raise InputError(f"{store.root}: no segmentation matches readers={readers} timepoints={timepoints}")
    identity = {"model": {k: v for k, v in seg_model.identity.items() if k != "path"},
                "min_coverage": min_coverage, "cache_version": CACHE_VERSION}
    files = case_files(store, BOTTLENECK_TABLE, cases, seg_model.channels, identity, ".npy")

    groups: dict[tuple[str, str], list[Case]] = defaultdict(list)
    for case in cases:
        groups[(case.patient_id, case.timepoint)].append(case)
    failures: list[dict[str, str]] = []
    computed = cached = 0
    with Progress(len(cases), "deep features: bottleneck", callback=callback) as progress:
        for (pid, tp_name), group in groups.items():
            if cancel is not None:
                cancel.check()
            todo = [c for c in group if not files[c.key].is_file()]
            cached += len(group) - len(todo)
            if todo:
                try:
                    tp = store.cohort[pid].timepoint(tp_name)
                    sources = {key: str(store.path(resolve_image(tp, key, f"{pid}/{tp_name}").path))
                               for key in seg_model.channels}
                    features, grid = bottleneck_feature_map(seg_model, sources, name=f"{pid}/{tp_name}")
                except Exception as exc:  # the whole timepoint fails for every reader
                    failures.extend(describe_failure(c, exc) for c in todo)
                    todo = []
            for case in todo:
                try:
                    coverage = mask_on_grid(read_case_mask(store, case), grid, label=case.segmentation.label)
                    mean, peak = pool_in_mask(features, coverage, min_coverage)
                except Exception as exc:
                    failures.append(describe_failure(case, exc))
                    continue
                with atomic_path(files[case.key]) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, np.concatenate([mean, peak]).astype(np.float32))
                computed += 1
            progress.update(len(group), f"{pid}/{tp_name}")

    vectors, done = {}, []
    for case in cases:
        path = files[case.key]
        if path.is_file():
            vectors[(case.patient_id, case.reader, case.timepoint)] = np.load(path, allow_pickle=False)
            done.append(case)
    provenance = collect(step="features deep bottleneck", parameters=identity, base=store.root,
                         inputs=input_paths(store, done, seg_model.channels),
                         extra={"model": seg_model.identity, "failures": failures, "n_rois": len(vectors)})
    if not vectors:
        return _result(BOTTLENECK_TABLE, computed, cached, failures, None, None, provenance, [])
    channels = len(next(iter(vectors.values()))) // 2
    table = wide_from_vectors(vectors, bottleneck_feature_names(channels), sorted({c.timepoint for c in cases}))
    path = store.write_table(BOTTLENECK_TABLE, table, provenance)
    store.audit("features deep bottleneck", target=BOTTLENECK_TABLE,
                details={"rois": len(vectors), "failures": len(failures)})
    return _result(BOTTLENECK_TABLE, computed, cached, failures, table, path, provenance, [BOTTLENECK_TABLE])


def gradcam_path(store: StudyStore, case: Case, model_name: str = "resnet50") -> Path:
    return store.root / "deep" / "gradcam" / case.patient_id / case.timepoint / f"{case.reader}__{model_name}.nii.gz"


def _write_gradcams(store: StudyStore, model, batch: list[tuple[Case, SliceInput]], failures: list[dict[str, str]]) -> None:
    from .gradcam import resnet_gradcam, write_map

    for case, item in batch:
        path = gradcam_path(store, case)
        if path.is_file():
            continue
        try:
            maps, _ = resnet_gradcam(model, item.array[None])
            write_map(maps[0], item, path)
        except Exception as exc:  # recorded like any other per-ROI failure
            failures.append(describe_failure(case, exc))
