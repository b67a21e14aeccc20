"""Radiomics parameter sets: the shipped pyradiomics parameter files and user-supplied ones.

A parameter set is the plain dict form of a pyradiomics parameter file (``imageType``,
``featureClass``, ``setting``, optionally ``voxelSetting``) plus our optional ``ibsi`` section
(IBSI pre-processing, :mod:`.ibsi_preprocessing`), which is removed before pyradiomics sees the
dict.  Everything downstream (task hashes, provenance) works on this dict, so a YAML file and an
equivalent JSON file give the same hash, and switching IBSI processing on or off recomputes.
This is the lowest radiomics module that imports pyradiomics (to validate a set), so it also
owns :func:`quiet_pyradiomics`, which the extractor calls too.
"""

from __future__ import annotations

import copy
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..provenance import sha256_json
from .ibsi_preprocessing import SECTION as IBSI_SECTION

#: Shipped parameter files (in ``NACResponseLib/resources``), by short name.
SHIPPED = {
    "breast": "radiomics_breast.yaml",  # default 3D protocol (1,130 features)
    "breast_2d": "radiomics_breast_2d.yaml",  # default for 2D images (ultrasound, mammography)
    "fast": "radiomics_fast.yaml",  # Original image only (107 features): demo and tests
    "ibsi": "radiomics_ibsi.yaml",  # IBSI-1 phantom settings
}
DEFAULT = "breast"
DEFAULT_2D = "breast_2d"

PYRADIOMICS_SECTIONS = ("imageType", "featureClass", "setting", "voxelSetting")
_SECTIONS = (*PYRADIOMICS_SECTIONS, IBSI_SECTION)


def shipped_path(name: str) -> Path:
    """Path of a shipped parameter file (``breast``, ``breast_2d``, ``fast``, ``ibsi``)."""
    if name not in SHIPPED:
        raise InputError(f"unknown shipped radiomics parameter set {name!r} (choose from {sorted(SHIPPED)})")
    return Path(str(resources.files("NACResponseLib") / "resources" / SHIPPED[name]))


def load_params(source: str | Path | dict[str, Any] | None = None) -> dict[str, Any]:
    """Parameter dict from a shipped name, a YAML/JSON file, or a dict (validated by pyradiomics).

    ``None`` means the default breast protocol.  Raises :class:`InputError` naming the file when it
    is missing, unparsable or rejected by pyradiomics' schema.
    """
    if source is None:
        source = DEFAULT
    if isinstance(source, dict):
        params, where = copy.deepcopy(source), "parameter dict"
    else:
        text_source = str(source)
        path = shipped_path(text_source) if text_source in SHIPPED else Path(text_source)
        where = str(path)
        if not path.is_file():
            raise InputError(f"{path}: radiomics parameter file not found")
        params = _parse_file(path)
    unknown = set(params) - set(_SECTIONS)
    if unknown:
        raise InputError(f"{where}: unknown top-level keys {sorted(unknown)} (a pyradiomics parameter file has "
                         f"{list(_SECTIONS)})")
    if params.get(IBSI_SECTION) is True:
        params[IBSI_SECTION] = {}  # "ibsi: true": IBSI processing without interpolation or re-segmentation
    params = {k: params[k] for k in _SECTIONS if params.get(k) not in (None, False)}
    validate(params, where)
    return params


def _parse_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        raise InputError(f"{path}: cannot parse radiomics parameter file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a radiomics parameter file must be a mapping with imageType/featureClass/setting")
    return data


class _DropKnownNoise(logging.Filter):
    """pyradiomics warns on every ROI that Sum Average = 2 x Joint Average for a symmetrical GLCM."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "only 1 needs to be calculated" not in record.getMessage()


_NOISE_FILTER = _DropKnownNoise()


def quiet_pyradiomics() -> None:
    """pyradiomics logs every step at INFO; keep warnings only (it is also faster).

    Imports pyradiomics first: its ``__init__`` sets its logger to INFO.
    """
    import radiomics  # noqa: F401

    for name in ("radiomics", "radiomics.glcm"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if _NOISE_FILTER not in logger.filters:
            logger.addFilter(_NOISE_FILTER)


_valid: set[str] = set()  # hashes of parameter dicts pyradiomics accepted in this process


def validate(params: dict[str, Any], where: str = "parameter dict") -> None:
    """Let pyradiomics check the parameters against its own schema, and check the ``ibsi`` section
    (once per distinct dict)."""
    key = params_hash(params)
    if key in _valid:
        return
    if IBSI_SECTION in params:
        from .ibsi_preprocessing import check_conflicts, parse

        parse(params[IBSI_SECTION], where)
        check_conflicts(settings(params), where)
    quiet_pyradiomics()
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    try:
        RadiomicsFeatureExtractor(copy.deepcopy(pyradiomics_params(params)))
    except Exception as exc:  # pykwalify SchemaError, ValueError
        message = str(exc).strip().splitlines()
        raise InputError(f"{where}: invalid pyradiomics parameters ({' '.join(message[:3])})") from None
    _valid.add(key)


def params_hash(params: dict[str, Any]) -> str:
    """Stable hash of a parameter dict (sorted keys), recorded in provenance and task keys."""
    return sha256_json(params)


def pyradiomics_params(params: dict[str, Any]) -> dict[str, Any]:
    """The part of a parameter set that pyradiomics reads (without the ``ibsi`` section)."""
    return {k: v for k, v in params.items() if k in PYRADIOMICS_SECTIONS}


def ibsi_settings(params: dict[str, Any]):
    """The parsed ``ibsi`` section (:class:`.ibsi_preprocessing.IbsiSettings`), or None: pyradiomics' own processing."""
    if params.get(IBSI_SECTION) in (None, False):
        return None
    from .ibsi_preprocessing import parse

    return parse(params[IBSI_SECTION])


def settings(params: dict[str, Any]) -> dict[str, Any]:
    return dict(params.get("setting") or {})


def is_2d(params: dict[str, Any]) -> bool:
    """True when the parameters compute 2D features (force2D or the shape2D class)."""
    return bool(settings(params).get("force2D")) or "shape2D" in (params.get("featureClass") or {})


def with_settings(params: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A copy of ``params`` with some ``setting`` entries replaced."""
    out = copy.deepcopy(params)
    out.setdefault("setting", {}).update(overrides)
    return out
