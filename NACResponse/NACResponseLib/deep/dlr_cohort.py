"""Study-level DLR: paired inputs, cross-validated training of DLR-2 / DLR-4, evaluation against
the clinical models, the stepwise DLRP pathway and per-patient prediction with Grad-CAM.

Inputs: for each patient, the baseline (``pre``) and the on-treatment timepoint of a step (``c2``
for DLR-2, ``c4`` for DLR-4), each cropped around its own tumour outline with the *baseline's*
window size (so a shrinking tumour looks smaller).  Ultrasound: the ``us_bmode`` image, one
channel repeated; MRI: DCE early, ADC/DWI and T2w on the largest tumour slice averaged with its
+-1 neighbours (the 2.5D protocol of slices.py).

Tables written (one owner each, all with provenance):

* ``dlr_oof``: patient_id, model, step, outcome, probability_oof (cross-validated, one row per
  patient and model), written by ``train_dlr_study``;
* ``dlr_evaluation``: one row per model (DLR-k and Clinical-k): AUC with bootstrap and DeLong
  CIs, operating point and its metrics, calibration;  ``dlr_delong``: DLR-k vs Clinical-k;
* ``dlr_stepwise`` (the DLRP flag counts) and ``dlr_stepwise_flags`` (per patient);
* ``dlr_predictions``: patient_id, model, step, probability, class per operating point and the
  Grad-CAM map files, written by ``predict_dlr_study``.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExistingResultError, InputError, MissingTimepointError
from ..provenance import collect, read_json, sha256_json
from .cases import DEFAULT_CHANNELS, Case, describe_failure, input_paths, read_case_images, read_case_mask
from .dlr import ENCODER_LAYERS, GRADCAM_LAYER, DLRNetConfig, TrainConfig

log = logging.getLogger(__name__)

STEP_WEIGHTS = {"c2": 0.8, "c4": 0.2}  # weighted Youden w: protect responders early, specificity late
CLINICAL_VARIABLES = ("er", "pr", "ki67", "her2")
TARGET = "miller_payne"  # Miller-Payne G4-5 (responder) vs G1-3
OOF_TABLE, EVALUATION_TABLE, DELONG_TABLE = "dlr_oof", "dlr_evaluation", "dlr_delong"
STEPWISE_TABLE, FLAGS_TABLE, PREDICTIONS_TABLE = "dlr_stepwise", "dlr_stepwise_flags", "dlr_predictions"


@dataclass(frozen=True)
class DLRInputSettings:
    """What defines a network input (hashed into the bundle)."""

    modality: str = "US"
    channels: tuple[str, ...] = ("us_bmode",)
    reader: str | None = None  # None: the reader with outlines on channels[0] for the most patients
    baseline: str = "pre"
    size: int = 64
    margin_mm: float = 4.0
    average_neighbours: bool = False

    @classmethod
    def for_modality(cls, modality: str, **kw) -> DLRInputSettings:
        if modality == "US":
            return cls(**kw)
        if modality == "MR":
            return cls(**{"modality": "MR", "channels": DEFAULT_CHANNELS, "margin_mm": 10.0,
                          "average_neighbours": True, **kw})
        raise InputError(f"modality must be US or MR, got {modality!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DLRInputSettings:
        fields = {k: d[k] for k in ("modality", "reader", "baseline", "size", "margin_mm", "average_neighbours")}
        return cls(channels=tuple(d["channels"]), **fields)


@dataclass
class PairedInputs:
    """The network inputs of one step: arrays (N, 3, S, S), the SliceInputs and the masks' sizes."""

    step: str
    reader: str
    patient_ids: list[str]
    base: np.ndarray
    treat: np.ndarray
    items: list[tuple[Any, Any]]  # (baseline SliceInput, on-treatment SliceInput)
    cases: list[tuple[Case, Case]]
    volume_reduction_pct: list[float]
    failures: list[dict[str, str]] = field(default_factory=list)


def _segmentation_on(tp, key: str, reader: str | None):
    for s in tp.segmentations:
        if s.reference == key and (reader is None or s.reader == reader):
            return s
    return None


def choose_reader(store, settings: DLRInputSettings, step: str) -> str:
    """The given reader, else the one with outlines on ``channels[0]`` at baseline and step for most patients."""
    key = settings.channels[0].split("|")[0]
    counts: dict[str, int] = {}
    for p in store.cohort:
        tps = p.timepoints
        if settings.baseline not in tps or step not in tps:
            continue
        readers = [{s.reader for s in tps[t].segmentations if s.reference == key} for t in (settings.baseline, step)]
        for r in readers[0] & readers[1]:
            counts[r] = counts.get(r, 0) + 1
    if settings.reader:
        if settings.reader not in counts:
            raise InputError(f"{store.root}: reader {settings.reader!r} has no outline on {key!r} at both "
                             f"{settings.baseline} and {step} (readers with one: {sorted(counts) or 'none'})")
        return settings.reader
    if not counts:
        raise InputError(f"{store.root}: no patient has a tumour outline on {key!r} at both {settings.baseline} "
                         f"and {step}; DLR needs one per timepoint")
    return sorted(counts, key=lambda r: (-counts[r], r))[0]


def _tumour_size(mask) -> float:
    """Volume in mL (3D); for a 2D outline the volume of the sphere of the same cross-section."""
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(mask) != 0
    spacing = mask.GetSpacing()
    if mask.GetDimension() == 2:
        area = float(array.sum()) * spacing[0] * spacing[1]
        return 4.0 / 3.0 * np.pi * (area / np.pi) ** 1.5 / 1000.0
    return float(array.sum()) * float(np.prod(spacing)) / 1000.0


def paired_inputs(store, step: str, settings: DLRInputSettings, patients: list[str] | None = None) -> PairedInputs:
    """Baseline + step inputs of every patient who has both; failing patients are recorded."""
    from .slices import prepare_input

    reader = choose_reader(store, settings, step)
    key = settings.channels[0].split("|")[0]
    ids, base, treat, items, cases, reduction, failures = [], [], [], [], [], [], []
    for p in sorted(store.cohort, key=lambda p: p.patient_id):
        if patients and p.patient_id not in patients:
            continue
        segs = {t: _segmentation_on(p.timepoints[t], key, reader) if t in p.timepoints else None
                for t in (settings.baseline, step)}
        if any(s is None for s in segs.values()):
            if patients:
                missing = [t for t, s in segs.items() if s is None]
                failures.append({"patient_id": p.patient_id, "timepoint": ",".join(missing), "reader": reader,
                                 "error": f"{p.patient_id}: no {reader} outline on {key} at {', '.join(missing)}"})
            continue
        pair = [Case(p.patient_id, t, reader, s) for t, s in segs.items()]
        try:
            prepared, sizes = [], []
            for case in pair:
                images, names = read_case_images(store, case, settings.channels)
                mask = read_case_mask(store, case)
                half = prepared[0].window.half_mm if prepared else None
                try:
                    prepared.append(prepare_input(images, mask, names=names, size=settings.size,
                                                  margin_mm=settings.margin_mm, label=case.segmentation.label,
                                                  average_neighbours=settings.average_neighbours, half_mm=half))
                except InputError as exc:
                    raise InputError(f"{case.name} ({case.segmentation.path}): {exc}") from None
                sizes.append(_tumour_size(mask))
        except (InputError, MissingTimepointError, OSError, RuntimeError) as exc:
            failures.append(describe_failure(pair[0], exc))
            continue
        ids.append(p.patient_id)
        base.append(prepared[0].array)
        treat.append(prepared[1].array)
        items.append((prepared[0], prepared[1]))
        cases.append((pair[0], pair[1]))
        reduction.append(100.0 * (1.0 - sizes[1] / sizes[0]) if sizes[0] > 0 else float("nan"))
    shape = (0, 3, settings.size, settings.size)
    return PairedInputs(step, reader, ids, np.stack(base) if base else np.zeros(shape, np.float32),
                        np.stack(treat) if treat else np.zeros(shape, np.float32), items, cases, reduction, failures)


def _labels(store, ids: list[str], target: str) -> np.ndarray:
    from ..modelling.data import clinical_frame
    from ..modelling.targets import make_target

    return make_target(clinical_frame(store), target).reindex(ids).to_numpy(dtype=float)


def _inputs_files(store, pairs: PairedInputs, channels) -> list[Path]:
    return input_paths(store, [c for pair in pairs.cases for c in pair], channels)


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------

def cross_validated_scores(base, treat, y, *, n_splits: int, net_config: DLRNetConfig, train_config: TrainConfig,
                           init_weights=None, init_sha256=None, device=None, work_dir: Path | None = None,
                           progress=None, cancel=None) -> np.ndarray:
    """Out-of-fold response probabilities: a network trained on each training fold scores its held-out fold."""
    from sklearn.model_selection import StratifiedKFold

    from .dlr import predict_logits, train_network

    y = np.asarray(y).astype(int)
    n_min = int(min(y.sum(), len(y) - y.sum()))
    if n_min < 2:
        raise InputError(f"cross-validation needs at least 2 responders and 2 non-responders (have {n_min} "
                         "in the smaller class)")
    oof = np.full(len(y), np.nan)
    splits = StratifiedKFold(min(n_splits, n_min), shuffle=True, random_state=train_config.seed)
    for fold, (tr, te) in enumerate(splits.split(np.zeros(len(y)), y)):
        net, _ = train_network(base[tr], treat[tr], y[tr], net_config=net_config, train_config=train_config,
                               init_weights=init_weights, init_sha256=init_sha256, device=device,
                               work_dir=work_dir / f"fold{fold}" if work_dir else None, cancel=cancel)
        oof[te] = 1.0 / (1.0 + np.exp(-predict_logits(net, base[te], treat[te]).astype(np.float64)))
        if progress is not None:
            progress(fold + 1, splits.get_n_splits(), f"fold {fold + 1}")
    return oof


def train_dlr_study(store, out_dir: str | Path, *, step: str, settings: DLRInputSettings | None = None,
                    net_config: DLRNetConfig | None = None, train_config: TrainConfig | None = None,
                    init_weights: str | Path | None = None, init_sha256: str | None = None,
                    youden_weight: float | None = None, n_splits: int = 5, target: str = TARGET,
                    gradcam_layer: str = GRADCAM_LAYER, device: str | None = None, progress=None,
                    cancel=None) -> dict[str, Any]:
    """Train DLR-<k> (k = the step's course) and save its bundle; the operating point is the weighted
    Youden threshold on the cross-validated (out-of-fold) scores, never on the in-sample fit.

    A bundle already in ``out_dir`` made from the same inputs and parameters is reused; one made
    otherwise is refused (finished models are never overwritten).
    """
    from ..modelling.evaluation import bootstrap_metrics, weighted_youden
    from ..segmentation.bundle import METADATA
    from .dlr import array_sha256, save_dlr_bundle, train_network

    settings = settings or DLRInputSettings()
    if gradcam_layer not in ENCODER_LAYERS:
        raise InputError(f"Grad-CAM layer must be one of {', '.join(ENCODER_LAYERS)}, got {gradcam_layer!r}")
    net_config = net_config or DLRNetConfig()
    train_config = train_config or TrainConfig(modality=settings.modality)
    w = STEP_WEIGHTS.get(step, 0.5) if youden_weight is None else float(youden_weight)
    pairs = paired_inputs(store, step, settings)
    y_all = _labels(store, pairs.patient_ids, target)
    keep = np.isfinite(y_all)
    if keep.sum() < 6:
        raise InputError(f"{store.root}: only {int(keep.sum())} patients have {settings.baseline}+{step} inputs and "
                         f"a {target} outcome; DLR training needs more")
    ids = [i for i, k in zip(pairs.patient_ids, keep) if k]
    base, treat, y = pairs.base[keep], pairs.treat[keep], y_all[keep].astype(int)
    params = {"step": step, "target": target, "settings": settings.to_dict(), "network": net_config.to_dict(),
              "train": train_config.to_dict(), "n_splits": n_splits, "youden_weight": w,
              "init_sha256": init_sha256, "init_weights": str(init_weights) if init_weights else None,
              "gradcam_layer": gradcam_layer}
    data_sha = sha256_json({"ids": ids, "y": y.tolist(), "base": array_sha256(base), "treat": array_sha256(treat)})
    params_sha = sha256_json(params)
    out = Path(out_dir)
    if (out / METADATA).is_file():
        nac = read_json((out / METADATA).read_text(encoding="utf-8"))["nacresponse"]
        prov = nac.get("provenance", {})
        if prov.get("parameters_sha256") == params_sha and nac.get("training", {}).get("data_sha256") == data_sha:
            return {"path": str(out), "reused": True, "operating_points": nac["operating_points"],
                    "training": nac["training"], "failures": pairs.failures}
        raise ExistingResultError(f"{out}: a DLR model made from other inputs or parameters is already here; choose a new "
                         "folder (finished models are never overwritten)")
    name = (f"DLR-{step[1:]}" if step.startswith("c") else f"DLR-{step}") \
        + ("" if settings.modality == "US" else f"-{settings.modality}")  # the study's tables keep both
    work = store.root / "cache" / "dlr" / f"{name}_{params_sha[:12]}_{data_sha[:12]}"
    oof = cross_validated_scores(base, treat, y, n_splits=n_splits, net_config=net_config, train_config=train_config,
                                 init_weights=init_weights, init_sha256=init_sha256, device=device,
                                 work_dir=work, progress=progress, cancel=cancel)
    ops = {"dlr": weighted_youden(y, oof, w), "youden": weighted_youden(y, oof, 0.5)}
    net, summary = train_network(base, treat, y, net_config=net_config, train_config=train_config,
                                 init_weights=init_weights, init_sha256=init_sha256, device=device,
                                 work_dir=work / "final", cancel=cancel)
    summary.update({"data_sha256": data_sha, "n": len(ids), "positives": int(y.sum()), "target": target,
                    "cv": {"n_splits": n_splits, "patient_ids": ids, "y": y.tolist(), "oof": oof.tolist(),
                           "auc": bootstrap_metrics(y, oof, n_boot=2000, seed=train_config.seed)["auc"]},
                    "failures": pairs.failures})
    provenance = collect(step="model dlr train", parameters=params, base=store.root,
                         inputs=_inputs_files(store, pairs, settings.channels))
    provenance["parameters_sha256"] = params_sha
    if init_weights is None:
        provenance["warning"] = "random initialisation: no ImageNet weights were given"
    input_spec = {**settings.to_dict(), "reader": pairs.reader, "step": step, "target": target}
    path = save_dlr_bundle(out, net, name=name, input_spec=input_spec, operating_points=ops, training=summary,
                           provenance=provenance, gradcam_layer=gradcam_layer)
    shutil.rmtree(work, ignore_errors=True)  # the checkpoints only served resumption; the bundle is final
    _merge_table(store, OOF_TABLE, [{"patient_id": pid, "model": name, "step": step, "outcome": int(yy),
                                     "probability_oof": float(p)} for pid, yy, p in zip(ids, y, oof)],
                 ["model"], provenance)
    store.audit("model dlr train", target=str(path), details={"step": step, "n": len(ids)})
    return {"path": str(path), "reused": False, "operating_points": ops, "training": summary,
            "failures": pairs.failures}


def _merge_table(store, name: str, rows: list[dict[str, Any]], replace_by: list[str], provenance) -> None:
    """Replace the rows of ``name`` that share ``replace_by`` values with ``rows`` (other models' rows kept)."""
    import pandas as pd

    new = pd.DataFrame(rows)
    if store.has_table(name) and len(new):
        old = store.read_table(name)
        if set(replace_by) <= set(old.columns):
            keys = set(map(tuple, new[replace_by].astype(str).to_numpy()))
            old = old[[tuple(r) not in keys for r in old[replace_by].astype(str).to_numpy()]]
            new = pd.concat([old, new], ignore_index=True)
    store.write_table(name, new, provenance)


# ---------------------------------------------------------------------------------------------
# evaluation and the stepwise pathway
# ---------------------------------------------------------------------------------------------

def clinical_scores(store, ids: list[str], y, reduction_pct, *, n_splits: int = 5, seed: int = 0):
    """Clinical-k: backward stepwise logistic regression (AIC) on % tumour volume reduction, ER, PR,
    Ki-67 and HER2; out-of-fold probabilities from ``n_splits``-fold CV, and the final selection."""
    import pandas as pd

    from ..modelling.data import clinical_frame
    from ..modelling.pipeline import ModelSpec, cross_validated_predictions, fit_model, selection_report

    clin = clinical_frame(store).reindex(ids)
    X = pd.DataFrame({"volume_reduction_pct": np.asarray(reduction_pct, float)}, index=pd.Index(ids, name="patient_id"))
    for c in CLINICAL_VARIABLES:
        if c in clin.columns:
            X[c] = pd.to_numeric(clin[c], errors="coerce").to_numpy()
    spec = ModelSpec("clinical", "logistic", random_state=seed)
    cv = cross_validated_predictions(spec, X, y, n_splits=n_splits, seed=seed)
    return cv["oof"], selection_report(fit_model(spec, X, y, seed=seed))


def score_report(name: str, y, p, threshold: float, weight: float, *, n_boot: int, seed: int) -> dict[str, Any]:
    """The project's evaluation of one score: bootstrap metrics at the operating point, DeLong CI,
    calibration, deciles and the decision curve."""
    from ..modelling.calibration import calibration_slope_intercept, decile_table
    from ..modelling.dca import net_benefit
    from ..modelling.delong import auc_ci
    from ..modelling.evaluation import bootstrap_metrics

    return {"name": name, "n": int(len(y)), "youden_weight": weight, "threshold": float(threshold),
            "metrics": bootstrap_metrics(y, p, threshold, n_boot=n_boot, seed=seed), "auc_delong": auc_ci(y, p),
            "calibration": calibration_slope_intercept(y, p), "deciles": decile_table(y, p).to_dict(orient="records"),
            "dca": net_benefit(y, p).to_dict(orient="records")}


def evaluate_dlr_study(store, bundles: dict[str, str | Path], *, n_boot: int = 2000, n_splits: int = 5,
                       seed: int = 0, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate saved DLR bundles (``{step: folder}``, e.g. ``{"c2": ..., "c4": ...}``) on their
    out-of-fold scores against Clinical-k, and run the DLRP pathway; writes the tables above and
    ``<out_dir>/evaluation.json`` (default ``<study>/reports/dlr``)."""

    import pandas as pd

    from ..atomic import atomic_write_text
    from ..modelling.delong import delong_paired
    from ..modelling.evaluation import weighted_youden
    from ..modelling.stepwise import flag_table, stepwise_flags
    from ..provenance import strict_json
    from .dlr import load_dlr_bundle

    if not bundles:
        raise InputError("give at least one DLR bundle to evaluate")
    steps = sorted(bundles, key=lambda s: int(s[1:]) if s[1:].isdigit() else 99)
    models, rows, delong_rows, oof_by_step, ops_by_step, meta = {}, [], [], {}, {}, {}
    for step in steps:
        model = load_dlr_bundle(bundles[step], device="cpu")
        nac, name = model.nac, model.metadata["name"]
        cv = nac["training"]["cv"]
        ids, y, oof = cv["patient_ids"], np.asarray(cv["y"], int), np.asarray(cv["oof"], float)
        op = nac["operating_points"]["dlr"]
        settings = DLRInputSettings.from_dict(nac["input"])
        pairs = paired_inputs(store, step, settings, patients=ids)
        red = dict(zip(pairs.patient_ids, pairs.volume_reduction_pct))
        keep = np.array([pid in red for pid in ids])
        dlr = score_report(name, y, oof, op["threshold"], op["weight"], n_boot=n_boot, seed=seed)
        clin_name = f"Clinical-{step[1:]}"
        cids = [pid for pid, k in zip(ids, keep) if k]
        c_oof, c_sel = clinical_scores(store, cids, y[keep], [red[p] for p in cids], n_splits=n_splits, seed=seed)
        c_op = weighted_youden(y[keep], c_oof, op["weight"])
        clin = score_report(clin_name, y[keep], c_oof, c_op["threshold"], op["weight"], n_boot=n_boot, seed=seed)
        clin["selection"] = c_sel
        models[name], models[clin_name] = dlr, clin
        d = delong_paired(y[keep], oof[keep], c_oof)
        delong_rows.append({"model_1": name, "model_2": clin_name, "step": step, "n": int(keep.sum()), **d})
        for m in (dlr, clin):
            a = m["metrics"]
            rows.append({"model": m["name"], "step": step, "n": m["n"], "auc": a["auc"]["estimate"],
                         "auc_ci_low": a["auc"]["ci_low"], "auc_ci_high": a["auc"]["ci_high"],
                         "auc_delong_ci_low": m["auc_delong"]["ci_low"], "auc_delong_ci_high": m["auc_delong"]["ci_high"],
                         "youden_weight": m["youden_weight"], "threshold": m["threshold"],
                         **{k: a[k]["estimate"] for k in ("sensitivity", "specificity", "ppv", "npv", "accuracy")},
                         "calibration_slope": m["calibration"]["slope"],
                         "calibration_intercept": m["calibration"]["intercept"], "brier": m["calibration"]["brier"]})
        oof_by_step[step] = dict(zip(ids, oof))
        ops_by_step[step] = op["threshold"]
        meta[step] = {"bundle": str(model.root), "name": name, "weights_sha256": nac["weights_sha256"],
                      "y": dict(zip(ids, y.tolist()))}
    # DLRP: DLR-2 non-responders are referred; the others continue and DLR-4 decides
    common = sorted(set.intersection(*(set(v) for v in oof_by_step.values())))
    y_common = np.array([meta[steps[0]]["y"][p] for p in common], int)
    probs = {s: np.array([oof_by_step[s][p] for p in common]) for s in steps}
    flags = stepwise_flags(probs, ops_by_step, ids=common)
    table = flag_table(y_common, flags)
    flags.insert(1, "outcome", y_common)
    names = {s: meta[s]["name"] for s in steps}
    table.insert(1, "model", [names.get(s, "") for s in table["step"]])
    pathway = {"patients": len(common), "responders": int(y_common.sum()),
               "non_responders": int(len(y_common) - y_common.sum()), "thresholds": ops_by_step,
               "table": table.to_dict(orient="records")}
    results = {"models": models, "delong": delong_rows, "dlrp": pathway, "bundles": meta,
               "settings": {"n_boot": n_boot, "n_splits": n_splits, "seed": seed}}
    provenance = collect(step="model dlr evaluate", parameters={"bundles": {s: str(b) for s, b in bundles.items()},
                                                                  "n_boot": n_boot, "n_splits": n_splits, "seed": seed},
                         base=store.root, extra={"weights_sha256": {s: meta[s]["weights_sha256"] for s in steps}})
    results["provenance"] = provenance
    store.write_table(EVALUATION_TABLE, pd.DataFrame(rows), provenance)
    store.write_table(DELONG_TABLE, pd.DataFrame(delong_rows), provenance)
    store.write_table(STEPWISE_TABLE, table, provenance)
    store.write_table(FLAGS_TABLE, flags, provenance)
    out = Path(out_dir) if out_dir else store.reports_dir / "dlr"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "evaluation.json", strict_json(results, indent=1))
    results["path"] = str(out / "evaluation.json")
    return results


# ---------------------------------------------------------------------------------------------
# prediction
# ---------------------------------------------------------------------------------------------

def predict_dlr_study(store, bundle: str | Path, patients: list[str] | None = None, *, gradcam: bool = True,
                      device: str | None = None) -> list[dict[str, Any]]:
    """Probability and class at each operating point for study patients (all with both inputs by
    default), with Grad-CAM maps of the response logit for each timepoint, written aligned with
    the source image (``<study>/deep/gradcam/<patient>/<timepoint>/<reader>__<model>.nii.gz``)."""
    from .cohort import gradcam_path
    from .dlr import load_dlr_bundle, response_gradcam
    from .gradcam import write_map

    model = load_dlr_bundle(bundle, device=device)
    nac, name = model.nac, model.metadata["name"]
    settings = DLRInputSettings.from_dict(nac["input"])
    step = nac["input"]["step"]
    pairs = paired_inputs(store, step, settings, patients=patients)
    out: list[dict[str, Any]] = [{"patient_id": f["patient_id"], "error": f["error"]} for f in pairs.failures]
    if patients:
        known = set(pairs.patient_ids) | {f["patient_id"] for f in pairs.failures}
        out += [{"patient_id": p, "error": f"{p}: not a patient of this study with {settings.baseline} and {step} "
                 "inputs"} for p in patients if p not in known]
    if not pairs.patient_ids:
        return out
    probs = model.probabilities(pairs.base, pairs.treat)
    maps_b = maps_t = None
    if gradcam:
        maps_b, maps_t, _ = response_gradcam(model.network, pairs.base, pairs.treat, layer=model.gradcam_layer)
    rows = []
    for i, pid in enumerate(pairs.patient_ids):
        classes = {k: {"threshold": op["threshold"], "weight": op["weight"],
                       "label": "responder" if probs[i] >= op["threshold"] else "non-responder"}
                   for k, op in model.operating_points.items()}
        record = {"patient_id": pid, "model": name, "step": step, "probability": float(probs[i]), "classes": classes,
                  "weights_sha256": nac["weights_sha256"], "gradcam": {}}
        if gradcam:
            for (case, item), cam in zip(zip(pairs.cases[i], pairs.items[i]), (maps_b[i], maps_t[i])):
                path = gradcam_path(store, case, model_name=name)
                write_map(cam, item, path)
                record["gradcam"][case.timepoint] = str(path.relative_to(store.root))
        out.append(record)
        rows.append({"patient_id": pid, "model": name, "step": step, "probability": float(probs[i]),
                     **{f"class_{k}": v["label"] for k, v in classes.items()},
                     **{f"threshold_{k}": v["threshold"] for k, v in classes.items()},
                     **{f"gradcam_{tp}": p for tp, p in record["gradcam"].items()}})
    provenance = collect(step="model dlr predict", parameters={"bundle": str(model.root), "gradcam": gradcam,
                                                                "gradcam_layer": model.gradcam_layer},
                         base=store.root, inputs=_inputs_files(store, pairs, settings.channels),
                         extra={"model": model.identity})
    _merge_table(store, PREDICTIONS_TABLE, rows, ["model", "patient_id"], provenance)
    return out
