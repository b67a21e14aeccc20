"""Reload the module's Python packages in a running Slicer (Slicer-free, so CI tests it).

*Reload* in Slicer re-executes only ``NACResponse.py``; without this, the code of NACResponseLib
and NACResponseSlicerLib (and any state they keep at module level) would stay the old one.
Python 3.12 has no ``imp``: everything here is ``importlib``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable


def _inPackages(name: str, packages: Iterable[str]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def reloadPackages(packages: Iterable[str]) -> list[str]:
    """Forget every loaded module of ``packages`` and import them again, fresh; returns their names.

    Forgetting all of them first, then importing, gives each module its dependencies' new code
    (``importlib.reload`` one by one would bind names from modules not reloaded yet).
    """
    packages = tuple(packages)
    names = sorted(name for name in sys.modules if _inPackages(name, packages))
    for name in names:
        del sys.modules[name]
    importlib.invalidate_caches()
    for name in names:
        importlib.import_module(name)
    return names
