"""ResNet-50 descriptors for a whole study: inputs per ROI, batched inference, cache, tables.

Each (patient, timepoint, reader) ROI becomes one 3x224x224 input (see slices.py); inputs are
run through the network in batches; every finished vector is cached atomically under
``<study>/cache/deep_resnet50/<parameter hash>/`` so a cancelled or crashed run resumes without
recomputing, and a failing ROI is recorded while the others go on.  Finally the wide table
``deep_resnet50`` (see tables.py) and the per-ROI slice table ``deep_resnet50_slices`` are
written with provenance, which says when the weights were random (testing only).

The cohort runner of the radiomics stage is not used here: it loads the model in each task,
whereas a 100 MB network is loaded once and fed batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from ..progress import CancelToken, Progress
from ..provenance import collect, sha256_json
from .cases import (
    DEFAULT_CHANNELS,
    Case,
    case_digest,
    cohort_cases,
    describe_failure,
    input_paths,
    read_case_images,
    read_case_mask,
)
from .slices import DEFAULT_MARGIN_MM, INPUT_SIZE, SliceInput, prepare_input
from .tables import RESNET_SLICES_TABLE, RESNET_TABLE, resnet_feature_names, wide_from_vectors

log = logging.getLogger(__name__)
CACHE_VERSION = 1


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


@dataclass
class DeepResult:
    """Outcome of a cohort run.  ``failures`` lists ROIs that could not be processed."""

    table: Any  # pandas DataFrame or None when nothing succeeded
    path: Path | None
    computed: int = 0
    cached: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)


def case_input(store, case: Case, settings: ResNetSettings) -> SliceInput:
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


def check_not_overwriting(store, table: str, parameters_sha256: str, overwrite: bool) -> None:
    """Finished results are never replaced silently by ones computed with other parameters."""
    if overwrite or not store.has_table(table):
        return
    previous = store.table_provenance(table).get("parameters_sha256")
    if previous and previous != parameters_sha256:
        raise InputError(f"{store.table_path(table)}: table {table!r} exists and was made with other parameters; "
                         "pass --overwrite to replace it")


def extract_resnet50(store, *, weights: str | Path | None = None, expected_sha256: str | None = None,
                     random_weights: bool = False, settings: ResNetSettings | None = None,
                     readers: list[str] | None = None, timepoints: list[str] | None = None,
                     batch_size: int = 8, mode: str = "auto", precision: str = "auto",
                     threads: int | None = None, gradcam: bool = False, overwrite: bool = False,
                     callback: Callable[[int, int, str], None] | None = None,
                     cancel: CancelToken | None = None) -> DeepResult:
    """ResNet-50 features for every ROI of a study; writes ``deep_resnet50`` (+ ``_slices``).

    ``gradcam`` also writes a Grad-CAM map per ROI (top ImageNet class) to
    ``<study>/deep/gradcam/<patient>/<timepoint>/<reader>__resnet50.nii.gz``, aligned with the
    DCE volume.  Returns a :class:`DeepResult`; raise only on bad arguments or weights.
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
    params_sha = sha256_json(identity)
    check_not_overwriting(store, RESNET_TABLE, params_sha, overwrite)
    cache = store.root / "cache" / RESNET_TABLE / params_sha[:16]
    cache.mkdir(parents=True, exist_ok=True)

    failures: list[dict[str, str]] = []
    computed = cached = 0
    pending: list[tuple[Case, SliceInput]] = []
    files = {case.key: cache / f"{case.key}__{case_digest(store, case, settings.channels)}.npz" for case in cases}

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
        return DeepResult(None, None, computed, cached, failures, provenance)
    import pandas as pd

    table = wide_from_vectors(vectors, resnet_feature_names(), sorted({c.timepoint for c in cases}))
    path = store.write_table(RESNET_TABLE, table, provenance)
    store.write_table(RESNET_SLICES_TABLE, pd.DataFrame(slice_rows), provenance)
    store.audit("features deep resnet50", target=RESNET_TABLE,
                details={"rois": len(slice_rows), "failures": len(failures),
                         "random_weights": weights_info["random_weights"]})
    return DeepResult(table, path, computed, cached, failures, provenance)


def gradcam_path(store, case: Case, model_name: str = "resnet50") -> Path:
    return store.root / "deep" / "gradcam" / case.patient_id / case.timepoint / f"{case.reader}__{model_name}.nii.gz"


def _write_gradcams(store, model, batch: list[tuple[Case, SliceInput]], failures: list[dict[str, str]]) -> None:
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
