"""Turn one patient's prediction (``NACResponseLib.modelling.predict.predict_case`` /
``modelling.cohort.predict_study``: probability, classes per operating point, top_features) into the
text and table the Prediction panel shows (Slicer-free)."""

from __future__ import annotations

from typing import Any


def prediction_summary(prediction: dict[str, Any]) -> str:
    """``P(response) = 0.734; early: likely responder (threshold 0.310); ...`` or the core's error."""
    if "error" in prediction:
        return f"{prediction.get('patient_id', '')}: no prediction ({prediction['error']})".strip()
    parts = []
    probability = prediction.get("probability")
    if isinstance(probability, (int, float)):
        target = prediction.get("target")
        parts.append(f"P({target or 'response'}) = {probability:.3f}")
    for name, value in (prediction.get("classes") or {}).items():
        text = f"{name}: {value.get('label', value.get('class'))}"
        if isinstance(value.get("threshold"), (int, float)):
            text += f" (threshold {value['threshold']:.3f})"
        parts.append(text)
    return "; ".join(parts) if parts else "The prediction has no probability."


def top_features_frame(prediction: dict[str, Any]):
    """``top_features`` as a DataFrame (feature, value, contribution), or None when absent."""
    import pandas as pd

    top = prediction.get("top_features")
    if not top:
        return None
    frame = pd.DataFrame(top)
    kind = prediction.get("contribution_kind")
    if kind:
        frame = frame.rename(columns={"contribution": f"contribution ({kind})"})
    return frame
