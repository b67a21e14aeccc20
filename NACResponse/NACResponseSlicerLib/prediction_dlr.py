"""What the Prediction panel needs for a DLR bundle (``nacresponse model dlr train``), Slicer-free:
tell a DLR bundle from a saved feature model, predict one patient (score, class at each operating
point, Grad-CAM maps of the response logit per timepoint) and say which image each map goes over."""

from __future__ import annotations

import json
import pathlib
from typing import Any

METADATA = pathlib.Path("configs") / "metadata.json"


def is_dlr_bundle(folder) -> bool:
    """True for a folder holding a DLR bundle (not a feature model with model.json)."""
    meta = pathlib.Path(str(folder)) / METADATA
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("nacresponse", {}).get("kind") == "dlr"
    except (OSError, ValueError):
        return False


def dlr_prediction(store, folder, patient_id: str) -> dict[str, Any]:
    """The core's DLR prediction of one patient (Grad-CAM maps written into the study), or its error."""
    from NACResponseLib.deep.dlr_cohort import predict_dlr_study

    out = predict_dlr_study(store, pathlib.Path(str(folder)), [patient_id])
    return next((r for r in out if r.get("patient_id") == patient_id),
                {"patient_id": patient_id, "error": "no prediction returned"})


def dlr_summary(prediction: dict[str, Any]) -> str:
    """``DLR-2: P(response) = 0.734; dlr: responder (threshold 0.310); ...`` or the core's error."""
    from .prediction_text import prediction_summary

    text = prediction_summary(prediction)
    return f"{prediction['model']}: {text}" if "model" in prediction and "error" not in prediction else text


def dlr_overlays(store, folder, prediction: dict[str, Any]) -> list[dict[str, str]]:
    """One entry per timepoint: the Grad-CAM map file and the image key it lies over (the bundle's
    first channel: ``us_bmode`` for ultrasound, ``dce_early`` for MRI), baseline first."""
    meta = json.loads((pathlib.Path(str(folder)) / METADATA).read_text(encoding="utf-8"))["nacresponse"]["input"]
    background = str(meta["channels"][0]).split("|")[0]
    out = []
    for timepoint in (meta["baseline"], meta["step"]):
        rel = (prediction.get("gradcam") or {}).get(timepoint)
        if rel:
            out.append({"timepoint": timepoint, "gradcam": str(store.root / rel), "background": background})
    return out
