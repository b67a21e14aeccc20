"""The study folder is a boundary: a path built from ids or read from a file must stay under its root."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import InputError


def within(root: str | Path, path: str | Path) -> bool:
    """True when ``path`` (``..`` and symlinks resolved) lies inside ``root``."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return True


#: Patient, reader and session ids become folder and file names: letters, digits, "_", "." and "-",
#: never "." or "..".  resources/manifest.schema.json spells the same pattern for the manifest.
ID_PATTERN = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.-]+$")


def check_id(value: str, what: str) -> str:
    """``value`` if it is a safe id, else :class:`InputError` naming ``what``."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InputError(f"{what} {value!r} may only contain letters, digits, '_', '.' and '-' (and is not '.' or '..')")
    return value
