"""Training the MC candidate classifier (:mod:`.classifier`): labels from realistic phantoms and from
the user's edits of a study's detections; see :mod:`.classifier` for the features, labels and model.

Kept apart from :mod:`.classifier` so that the detector, which applies a saved model, does not
import what training needs (the phantom, the matcher and the study tables).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .classifier import FEATURES, TARGET, candidate_features, model_sha256

IMAGE_KEYS = ["patient_id", "timepoint", "image"]


def phantom_training_table(n_images: int = 16, seed: int = 10_000) -> pd.DataFrame:
    """Features and labels of the rule-passing candidates on ``n_images`` realistic phantoms."""
    from .detect import DetectorParams, detect_microcalcifications
    from .evaluation import match_image
    from .phantom import synthesize_mammogram

    frames = []
    for i in range(int(n_images)):
        rng = np.random.default_rng(seed + i)
        spacing, view, lat = (0.1, 0.2)[i % 2], ("CC", "MLO")[(i // 2) % 2], ("L", "R")[(i // 4) % 2]
        x = float(rng.uniform(18, 35))
        cl = [] if i % 3 == 2 else [{"center_mm": (x if lat == "L" else 70.0 - x, float(rng.uniform(35, 60))),
                                    "n": int(rng.integers(5, 16)), "extent_mm": float(rng.uniform(4, 18)),
                                    "diameter_mm": (0.15, 0.6), "cnr": (3.5, 8.0)}]
        im, truth = synthesize_mammogram(rng, spacing_mm=spacing, view=view, laterality=lat, clusters=cl,
                                         n_vessels=int(rng.integers(0, 4)), n_benign=int(rng.integers(0, 4)),
                                         pad_mm=float(rng.choice([0.0, 8.0])), skin_level=float(rng.uniform(0.15, 0.6)),
                                         density=float(rng.uniform(0, 1)), scanner_lines=int(rng.integers(0, 3)),
                                         film_edge=bool(rng.integers(0, 2)))
        det = detect_microcalcifications(im, spacing, view=view, params=DetectorParams(threshold=4.0)).detections
        feats = candidate_features(det)
        txy = np.array([[t["x_mm"], t["y_mm"]] for t in truth]).reshape(-1, 2)
        lab = match_image(det[["x_mm", "y_mm"]].to_numpy(), det["score"].to_numpy(), txy,
                          np.array([t["diameter_mm"] for t in truth]))
        use = det["kept"].to_numpy(bool) & (lab >= 0)
        frames.append(feats[use].assign(label=(lab[use] == 1).astype(int), source="phantom", group=f"phantom{i}"))
    return pd.concat(frames, ignore_index=True)


def study_training_table(store) -> tuple[pd.DataFrame, dict]:
    """Features and labels from the user's edits on a study's stored detections; also the counts."""
    from .cohort import edits_path
    from .editing import apply_edits, load_edits

    counts = {"images": 0, "positives": 0, "negatives": 0, "added_without_candidate": 0}
    if not store.has_table("mc_detections"):
        return pd.DataFrame(columns=[*FEATURES, "label", "source", "group"]), counts
    dets = store.read_table("mc_detections")
    missing = [c for c in ("background", "line_score") if c not in dets]
    if missing:
        raise InputError(f"{store.root}: mc_detections lacks {', '.join(missing)} (detected by an older version); "
                         "run 'mc detect --force' first")
    frames = []
    for (pid, tp, key), det in dets.groupby(IMAGE_KEYS, sort=True):
        path = edits_path(store, pid, tp, key)
        if not path.is_file():
            continue
        det = det.reset_index(drop=True)
        edited, _ = apply_edits(det, load_edits(path))
        user = edited["source"].astype(str) == "user"
        counts["added_without_candidate"] += int(user.sum())
        edited = edited[~user].reset_index(drop=True)
        reason = edited["reason"].astype(str)
        label = np.where(reason == "user_removed", 0, np.where(edited["kept"].to_numpy(bool), 1, -1))
        feats = candidate_features(det)  # features of the detector's own output, as at detection time
        use = label >= 0
        frames.append(feats[use].assign(label=label[use], source="study", group=f"{pid}/{tp}/{key}"))
        counts["images"] += 1
        counts["positives"] += int((label == 1).sum())
        counts["negatives"] += int((label == 0).sum())
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*FEATURES, "label", "source", "group"])
    return table, counts


def train_classifier(out_dir: str | Path, *, phantom_images: int = 16, store=None, seed: int = 10_000,
                     target_sensitivity: float = 0.95, overwrite: bool = False) -> dict:
    """Fit the classifier on phantom candidates (``phantom_images``, 0 for none) and on the edits of
    ``store`` (if given); save it to ``out_dir``.  Returns the training summary with ``sha256``."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from ..modelling.artefact import save_model
    from ..provenance import collect

    parts, study_counts = [], None
    if phantom_images > 0:
        parts.append(phantom_training_table(phantom_images, seed))
    if store is not None:
        table, study_counts = study_training_table(store)
        parts.append(table)
    data = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
    if data is None or data["label"].nunique() < 2:
        raise InputError("MC classifier: the training candidates need both true MCs and false ones "
                         f"(got {0 if data is None else len(data)} candidates); add phantom images or edited "
                         "mammograms")
    X, y = data[FEATURES].astype(float), data["label"].to_numpy(int)
    pipe = Pipeline([("zscore", StandardScaler()), ("model", GradientBoostingClassifier(
        n_estimators=100, max_depth=3, learning_rate=0.1, min_samples_leaf=5, random_state=seed))]
    ).set_output(transform="pandas")  # feature names reach the trees (the artefact checks the chain)
    # The threshold comes from out-of-fold probabilities (folds by image): in-sample ones are overfitted.
    groups = data["group"].to_numpy()
    folds = min(5, len(np.unique(groups)))
    if folds >= 2:
        prob = cross_val_predict(pipe, X, y, groups=groups, cv=GroupKFold(folds), method="predict_proba")[:, 1]
    else:
        prob = pipe.fit(X, y).predict_proba(X)[:, 1]
    threshold = float(np.quantile(prob[y == 1], 1.0 - target_sensitivity))
    kept_neg = float((prob[y == 0] >= threshold).mean())
    pipe.fit(X, y)
    summary = {"candidates": int(len(y)), "mcs": int(y.sum()), "false": int((y == 0).sum()),
               "by_source": data.groupby("source")["label"].agg(["size", "sum"]).to_dict(orient="index"),
               "phantom_images": int(phantom_images), "seed": int(seed), "study": study_counts,
               "target_sensitivity": target_sensitivity, "cv_folds": folds, "cv_false_kept_fraction": kept_neg}
    prov = collect(step="mc.train_classifier", parameters={"phantom_images": phantom_images, "seed": seed,
                                                          "target_sensitivity": target_sensitivity,
                                                          "features": FEATURES})
    save_model(out_dir, pipe, target=TARGET, kind="gradient_boosting",
               operating_points={"default": {"threshold": threshold, "cv_sensitivity": target_sensitivity,
                                             "cv_false_kept_fraction": kept_neg}},
               training_summary=summary, provenance=prov, overwrite=overwrite, X_train=X)
    return {**summary, "threshold": threshold, "sha256": model_sha256(out_dir), "path": str(out_dir)}
