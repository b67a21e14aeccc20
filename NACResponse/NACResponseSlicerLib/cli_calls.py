"""Argument lists of the ``nacresponse`` commands the panels run in the background (Slicer-free).

One function per command, so a test can parse every list with the real CLI parser
(``NACResponseLib.cli.build_parser``) and a renamed option fails in CI, not in front of a user.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _path(value) -> str:
    return str(Path(value))


def import_dicom(source_dir, study_dir) -> list[str]:
    return ["import", _path(source_dir), _path(study_dir), "--dicom"]


def validate(study) -> list[str]:
    return ["validate", _path(study)]


def radiomics(study, jobs: int = 2, patients: Sequence[str] | None = None) -> list[str]:
    args = ["features", "radiomics", _path(study), "--jobs", str(int(jobs))]
    if patients:
        args += ["--patients", ",".join(patients)]
    return args


def deep_features(study, weights=None, seg_model=None, gradcam: bool = False) -> list[str]:
    """ResNet-50 features with ``weights`` (and Grad-CAM maps ``deep/gradcam/<patient>/<tp>/
    <reader>__resnet50.nii.gz`` with ``gradcam``); bottleneck features with a segmentation model bundle."""
    args = ["features", "deep", _path(study)]
    args += ["--weights", _path(weights)] + (["--gradcam"] if gradcam else []) if weights else ["--skip-resnet"]
    if seg_model:
        args += ["--seg-model", _path(seg_model)]
    return args


def agreement(study, session: str | None = None) -> list[str]:
    return ["agreement", _path(study)] + (["--session", session] if session else [])


def icc(study, threshold: float = 0.8, form: str = "ICC2", session: str | None = None) -> list[str]:
    args = ["icc", _path(study), "--threshold", f"{float(threshold):g}", "--form", form]
    return args + (["--session", session] if session else [])


def seg_predict(study, bundle, patients: Sequence[str], timepoints: Sequence[str]) -> list[str]:
    """MONAI inference; writes ``segmentations/<patient>/<tp>/monai__monai.nii.gz`` and manifest rows."""
    return ["seg", "predict", _path(study), "--model", _path(bundle), "--patients", ",".join(patients),
            "--timepoints", ",".join(timepoints)]


def mc_detect(study, timepoints: Sequence[str] | None = None) -> list[str]:
    """Tables mc_images, mc_detections; an image whose file and parameters are unchanged is reused."""
    args = ["mc", "detect", _path(study)]
    return args + (["--timepoints", ",".join(timepoints)] if timepoints else [])


def mc_extent(study) -> list[str]:
    """Apply the stored user edits, cluster, measure extents (tables mc_mcs, mc_clusters)."""
    return ["mc", "extent", _path(study)]


def mc_compare(study, pre: str = "pre", post: str = "post") -> list[str]:
    """Pre/post extent change, MC category and RESMIN flag (tables mc_longitudinal, mc_resmin)."""
    return ["mc", "compare", _path(study), "--pre", pre, "--post", post]


def case_report(study, patient_id: str, out=None, pdf: bool = False, models: Sequence = ()) -> list[str]:
    """One patient's self-contained HTML page (and a PDF beside it with ``pdf``); ``models``: model
    folders outside ``<study>/models`` to include (the panel's chosen model)."""
    args = ["report", "case", _path(study), "--patient", patient_id]
    args += [a for m in models for a in ("--model", _path(m))]
    return args + (["--out", _path(out)] if out else []) + (["--pdf"] if pdf else [])


#: Every builder with example arguments, for the CLI-compatibility test.
EXAMPLES = {
    "import_dicom": lambda s: import_dicom(s / "dicom", s / "new"),
    "validate": lambda s: validate(s),
    "radiomics": lambda s: radiomics(s, 2, ["P001"]),
    "deep_features": lambda s: deep_features(s, s / "w.pth"),
    "deep_bottleneck": lambda s: deep_features(s, None, s / "bundle"),
    "agreement": lambda s: agreement(s),
    "agreement_session": lambda s: agreement(s, "S1"),
    "icc": lambda s: icc(s, 0.8),
    "icc_session": lambda s: icc(s, 0.75, "ICC2", "S1"),
    "seg_predict": lambda s: seg_predict(s, s / "bundle", ["P001"], ["pre", "post"]),
    "deep_gradcam": lambda s: deep_features(s, s / "w.pth", s / "bundle", gradcam=True),
    "mc_detect": lambda s: mc_detect(s, ["pre", "post"]),
    "mc_detect_all": lambda s: mc_detect(s),
    "mc_extent": lambda s: mc_extent(s),
    "mc_compare": lambda s: mc_compare(s, "pre", "c2"),
    "case_report": lambda s: case_report(s, "P001", s / "reports" / "cases" / "P001.html", pdf=True,
                                        models=[s / "model"]),
}
