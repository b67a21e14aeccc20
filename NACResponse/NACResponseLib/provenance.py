"""Provenance: software versions, parameters and input hashes recorded with every result.

Hashes are cached on (path, size, mtime) so re-hashing a large cohort is cheap.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__

TRACKED_PACKAGES = ("numpy", "SimpleITK", "pyradiomics", "scikit-learn", "torch", "monai", "pandas", "scipy")

_hash_cache: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-serialisable object with sorted keys (parameters, configurations)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def result_digest(function: str, identity: Any, inputs: Iterable[str | Path] = (), version: str = "") -> str:
    """The key of one per-case result: what computed it (``function``, ``version``), with which
    parameters (``identity``, JSON) from which file contents (``inputs``, hashed in order).

    Every resumable stage keys its per-case results with this (runner tasks, deep-feature
    arrays, MC detections), so a changed parameter or a replaced file gives a new key and the
    case is recomputed, while an unchanged rerun finds the old result.
    """
    files = [sha256_file(p) for p in inputs]
    return sha256_json({"function": function, "identity": identity, "inputs": files, "version": version})


#: Distributions that install the ``radiomics`` module: pyradiomics itself (3.0.1 does not build on
#: Python 3.12) and its maintained fork, which does.
RADIOMICS_DISTRIBUTIONS = ("pyradiomics", "pyradiomics-bhklab")


def _version(name: str) -> str | None:
    for distribution in RADIOMICS_DISTRIBUTIONS if name == "pyradiomics" else (name,):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def radiomics_version() -> str:
    """``pyradiomics=<version>`` or ``pyradiomics-bhklab=<version>``: whichever provides ``radiomics``."""
    for distribution in RADIOMICS_DISTRIBUTIONS:
        try:
            return f"{distribution}={metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            continue
    return "pyradiomics=unknown"


def package_versions(packages: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions without importing the packages (keeps heavy imports lazy); ``pyradiomics``
    is the version of whichever distribution provides the ``radiomics`` module."""
    out: dict[str, str | None] = {"nacresponse": __version__, "python": platform.python_version()}
    for name in packages:
        out[name] = _version(name)
    return out


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for NumPy scalars and arrays (anything else becomes a string)."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


#: Strict JSON (RFC 8259) has no literal for the non-finite floats, which the project does produce
#: (a fold threshold of +inf calls nobody positive; a feature can be NaN).  ``strict_json`` writes
#: them as these strings, the spellings that Python's ``float()`` and JavaScript's ``Number()``
#: both read, and ``read_json`` turns exactly these strings back into floats.
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _finite(value: Any, default) -> Any:
    if isinstance(value, float):  # np.float64 too
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, dict):
        return {k.item() if hasattr(k, "item") else k: _finite(v, default) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, default) for v in value]
    converted = default(value)
    if type(converted) is type(value):
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return _finite(converted, default)


def strict_json(obj: Any, *, default=json_default, **kwargs) -> str:
    """JSON text that every parser accepts: NaN and +-inf as the strings of ``NON_FINITE`` (plain
    ``json.dumps`` writes bare ``NaN``/``Infinity``, which other tools refuse).  ``default``
    converts other objects first, as in ``json.dumps``."""
    return json.dumps(_finite(obj, default), allow_nan=False, **kwargs)


def _restored(value: Any) -> Any:
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {k: _restored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restored(v) for v in value]
    return value


def read_json(text: str | bytes) -> Any:
    """Parse ``strict_json`` text (or older files with bare NaN/Infinity) with the non-finite
    floats restored."""
    return _restored(json.loads(text))


def write_json(path: str | Path, obj: Any, *, default=json_default, indent: int | None = 1) -> None:
    """``strict_json`` written atomically."""
    from .atomic import atomic_write_text

    atomic_write_text(path, strict_json(obj, default=default, indent=indent))


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def collect(*, step: str, parameters: dict[str, Any] | None = None,
            inputs: Iterable[str | Path] = (), base: str | Path | None = None,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Provenance record for a result: what ran, with which software, on which exact files.

    ``inputs`` are hashed (SHA-256); paths are stored relative to ``base`` when given.
    """
    hashes = {}
    for p in inputs:
        p = Path(p)
        name = os.path.relpath(p, base) if base else str(p)
        hashes[name] = sha256_file(p)
    return {
        "step": step,
        "created": now_iso(),
        "versions": package_versions(),
        "parameters": parameters or {},
        "parameters_sha256": sha256_json(parameters or {}),
        "inputs_sha256": hashes,
        "host": platform.node(),
        **(extra or {}),
    }
