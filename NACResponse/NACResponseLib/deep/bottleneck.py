"""Segmentation-network bottleneck features: the SegResNet encoder's deepest map pooled in the tumour.

These need no ImageNet weights (the network is the study's own segmentation model), so the
demo always computes them.  Per ROI and channel c of the bottleneck:

* ``bottleneck_mean_c``: mean of the map weighted by the fraction of each (coarse) feature voxel
  inside the tumour;
* ``bottleneck_max_c``: maximum over the feature voxels at least half inside the tumour (over
  the best-covered voxels when none is, e.g. a tumour smaller than one feature voxel).

The feature map is computed once per patient and timepoint and pooled in each reader's mask;
results are cached per ROI like the ResNet path, and written to the ``deep_bottleneck`` table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from ..progress import CancelToken, Progress
from ..provenance import collect, sha256_json
from .cases import (
    Case,
    case_digest,
    cohort_cases,
    describe_failure,
    input_paths,
    read_case_mask,
    resolve_image,
)
from .cohort import DeepResult, check_not_overwriting
from .tables import BOTTLENECK_TABLE, bottleneck_feature_names, wide_from_vectors

MIN_COVERAGE = 0.5
CACHE_VERSION = 1


def pool_in_mask(features: np.ndarray, coverage: np.ndarray,
                 min_coverage: float = MIN_COVERAGE) -> tuple[np.ndarray, np.ndarray]:
    """(C, z, y, x) features and a (z, y, x) coverage in [0, 1] -> (mean (C,), max (C,))."""
    features = np.asarray(features, dtype=np.float64)
    coverage = np.asarray(coverage, dtype=np.float64)
    if features.shape[1:] != coverage.shape:
        raise ValueError(f"feature map {features.shape[1:]} and coverage {coverage.shape} differ in shape")
    total = coverage.sum()
    if total <= 0:
        raise InputError("the tumour mask does not overlap the network's feature grid")
    flat = features.reshape(features.shape[0], -1)
    weights = coverage.ravel()
    mean = flat @ weights / total
    inside = weights >= min_coverage
    if not inside.any():
        inside = weights >= weights.max() - 1e-9
    return mean, flat[:, inside].max(axis=1)


def _load_model(model):
    from ..segmentation import load_bundle

    return load_bundle(model, device="cpu") if isinstance(model, str | Path) else model


def extract_bottleneck(store, model, *, readers: list[str] | None = None, timepoints: list[str] | None = None,
                       min_coverage: float = MIN_COVERAGE, overwrite: bool = False,
                       callback: Callable[[int, int, str], None] | None = None,
                       cancel: CancelToken | None = None) -> DeepResult:
    """Bottleneck features for every ROI of a study; writes ``deep_bottleneck``.

    ``model`` is a segmentation bundle folder (``nacresponse seg train`` output) or a loaded
    :class:`~NACResponseLib.segmentation.SegmentationModel`.
    """
    from ..segmentation import bottleneck_feature_map, mask_on_grid

    seg_model = _load_model(model)
    cases = cohort_cases(store.cohort, readers=readers, timepoints=timepoints,
                         channel=seg_model.preprocess.reference_channel)
    if not cases:
        raise InputError(f"{store.root}: no segmentation matches readers={readers} timepoints={timepoints}")
    identity = {"model": {k: v for k, v in seg_model.identity.items() if k != "path"},
                "min_coverage": min_coverage, "cache_version": CACHE_VERSION}
    params_sha = sha256_json(identity)
    check_not_overwriting(store, BOTTLENECK_TABLE, params_sha, overwrite)
    cache = store.root / "cache" / BOTTLENECK_TABLE / params_sha[:16]
    cache.mkdir(parents=True, exist_ok=True)

    groups: dict[tuple[str, str], list[Case]] = defaultdict(list)
    for case in cases:
        groups[(case.patient_id, case.timepoint)].append(case)
    failures: list[dict[str, str]] = []
    computed = cached = 0
    files = {c.key: cache / f"{c.key}__{case_digest(store, c, seg_model.channels)}.npy" for c in cases}
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
        return DeepResult(None, None, computed, cached, failures, provenance)
    channels = len(next(iter(vectors.values()))) // 2
    table = wide_from_vectors(vectors, bottleneck_feature_names(channels), sorted({c.timepoint for c in cases}))
    path = store.write_table(BOTTLENECK_TABLE, table, provenance)
    store.audit("features deep bottleneck", target=BOTTLENECK_TABLE,
                details={"rois": len(vectors), "failures": len(failures)})
    return DeepResult(table, path, computed, cached, failures, provenance)
