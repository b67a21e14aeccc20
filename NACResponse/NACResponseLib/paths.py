"""The study folder is a boundary: a path built from ids or read from a file must stay under its root."""

from __future__ import annotations

from pathlib import Path


def within(root: str | Path, path: str | Path) -> bool:
    """True when ``path`` (``..`` and symlinks resolved) lies inside ``root``."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return True
