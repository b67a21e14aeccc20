"""Optional second-stage classifier of MC candidates, learned from phantoms and from the user's edits.

Why: the detector's score (a noise-normalised contrast) barely separates real MCs from texture
peaks on real mammograms; a small model on several measurements of each candidate is the usual
remedy, and the user's own corrections are the labels closest to their images.

Features (``FEATURES``, all from the detection table, so stored detections can be re-scored without
the images, and free of the intensity scale of the device): ``score``, ``cnr``, contrast and pixel
noise relative to the local background, FWHM ``diameter_mm``, ``length_mm``, ``elongation``,
``scale_mm``, ``line_score`` and ``neighbours`` (other rule-passing candidates within 5 mm: MCs
come in groups, texture peaks less so).

Labels (only candidates that passed the detector's rules take part):

- phantom: realistic phantoms (:mod:`.phantom` with padding, a faint periphery, density, scanner
  lines, a film-edge block, vessels and coarse calcifications, at 0.1 and 0.2 mm pixels): 1 when the
  candidate matches a true MC (:func:`.evaluation.match_image`), 0 otherwise, duplicates left out;
- the user's edits (:mod:`.editing`): on every mammogram with an edit file, a kept candidate the user
  left is 1, one the user removed is 0, a rejected one the user restored is 1; added points have no
  candidate (no features) and are only counted.

Training (:mod:`.classifier_training`): z-score + gradient boosting (100 trees of depth 3), saved with
:mod:`..modelling.artefact` (``model.json`` + ``arrays.npz``, no pickle) with its operating
threshold: the probability that keeps ``target_sensitivity`` of the training MCs, out of fold (5
folds by image; in-sample probabilities of boosted trees are overfitted).  Applied, every
candidate gets ``probability``; a kept one below the threshold is rejected with reason
``classifier``.  :func:`model_sha256` (of both files) goes into ``DetectorParams.classifier_sha256``,
so a changed model changes the detection parameters, and is checked when the model is loaded.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

FEATURES = ["score", "cnr", "contrast_rel", "noise_rel", "diameter_mm", "length_mm", "elongation", "scale_mm",
            "line_score", "neighbours"]
TARGET = "mc_candidate"
NEIGHBOUR_MM = 5.0


def candidate_features(det: pd.DataFrame) -> pd.DataFrame:
    """The ``FEATURES`` of one image's candidates (rows aligned with ``det``)."""
    from scipy.spatial import cKDTree

    bg = np.maximum(det["background"].to_numpy(float), 1.0)
    out = pd.DataFrame({c: det[c].to_numpy(float) for c in FEATURES if c in det and c not in ("neighbours",)},
                       index=det.index)
    out["contrast_rel"] = det["contrast"].to_numpy(float) / bg
    out["noise_rel"] = det["noise"].to_numpy(float) / bg
    ruled = det["reason"].isin(["", "classifier"]).to_numpy() if "reason" in det else np.ones(len(det), bool)
    xy = det[["x_mm", "y_mm"]].to_numpy(float)
    n = np.zeros(len(det))
    if ruled.sum() > 1:
        tree = cKDTree(xy[ruled])
        n = np.array([len(v) for v in tree.query_ball_point(xy, NEIGHBOUR_MM)], dtype=float) - ruled
    out["neighbours"] = n
    return out[FEATURES]


def model_sha256(directory: str | Path) -> str:
    """SHA-256 of a saved classifier (model.json then arrays.npz)."""
    directory = Path(directory)
    h = hashlib.sha256()
    for name in ("model.json", "arrays.npz"):
        path = directory / name
        if not path.is_file():
            raise InputError(f"{path}: missing (not a saved MC classifier folder)")
        h.update(path.read_bytes())
    return h.hexdigest()


class CandidateClassifier:
    """A loaded classifier: ``apply(detections)`` adds ``probability`` and rejects the unlikely."""

    def __init__(self, model, sha256: str):
        self.model, self.sha256 = model, sha256
        self.threshold = float(model.operating_points["default"]["threshold"])

    def probability(self, det: pd.DataFrame) -> np.ndarray:
        if len(det) == 0:
            return np.zeros(0)
        return self.model.predict(candidate_features(det))

    def apply(self, det: pd.DataFrame) -> pd.DataFrame:
        det = det.copy()
        det["probability"] = self.probability(det)
        reject = det["kept"].to_numpy(bool) & (det["probability"].to_numpy(float) < self.threshold)
        det.loc[reject, "kept"] = False
        det.loc[reject, "reason"] = "classifier"
        return det


@lru_cache(maxsize=4)
def _load(path: str, sha256: str) -> CandidateClassifier:
    from ..modelling.artefact import load_model

    model = load_model(path)
    if model.meta.get("target") != TARGET:
        raise InputError(f"{path}: not an MC candidate classifier (target {model.meta.get('target')!r})")
    return CandidateClassifier(model, sha256)


def load_classifier(directory: str | Path, sha256: str = "") -> CandidateClassifier:
    """Load (and, when ``sha256`` is given, verify) a classifier saved by :func:`train_classifier`;
    loaded models are cached by their content hash."""
    path = str(Path(directory).resolve())
    actual = model_sha256(path)
    if sha256 and actual != sha256:
        raise InputError(f"{path}: MC classifier SHA-256 {actual[:12]}... differs from the expected "
                         f"{sha256[:12]}... (the model was changed or replaced)")
    return _load(path, actual)
