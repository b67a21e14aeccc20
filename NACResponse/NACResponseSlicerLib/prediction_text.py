"""Turn a saved per-case prediction (JSON written by ``nacresponse model predict``) into the text
and table the Prediction panel shows (Slicer-free)."""

from __future__ import annotations

from typing import Any


def prediction_summary(prediction: dict[str, Any]) -> str:
    probability = prediction.get("probability")
    parts = []
    if isinstance(probability, (int, float)):
        parts.append(f"P(response) = {probability:.3f}")
    classes = prediction.get("classes") or prediction.get("operating_points") or {}
    if isinstance(classes, dict):
        for name, value in classes.items():
            if isinstance(value, dict):
                label = value.get("class", value.get("label"))
                threshold = value.get("threshold")
                text = f"{name}: {label}"
                if isinstance(threshold, (int, float)):
                    text += f" (threshold {threshold:.3f})"
                parts.append(text)
            else:
                parts.append(f"{name}: {value}")
    return "; ".join(parts) if parts else "Prediction written (no probability in the output)."


def top_features_frame(prediction: dict[str, Any]):
    """``top_features`` as a DataFrame (feature, value, contribution ...), or None."""
    import pandas as pd

    top = prediction.get("top_features")
    if not top:
        return None
    if isinstance(top, dict):
        return pd.DataFrame({"feature": list(top), "contribution": list(top.values())})
    return pd.DataFrame(top)
