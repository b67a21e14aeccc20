"""Which Python packages are missing, and how to install them in this Slicer (Slicer-free planning).

``installer.py`` executes the plan inside Slicer.  The split matters because three packages need
special handling:

* ``torch`` comes through the PyTorch extension (``PyTorchUtils``) when it is installed, so users
  get the build that matches their GPU driver;
* ``pyradiomics==3.0.1`` has no wheel for Python >= 3.10 and must be built with
  ``--no-build-isolation`` against the numpy already installed;
* everything else goes through ``slicer.packaging.pip_ensure`` (Slicer >= 5.11) or
  ``slicer.util.pip_install`` (Slicer 5.10).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

NO_BUILD_ISOLATION = frozenset({"pyradiomics"})
TORCH = "torch"

#: First Slicer version with ``slicer.packaging.pip_ensure``.
PIP_ENSURE_VERSION = (5, 11)


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements.txt (comments, blank lines and pip options skipped)."""
    out = []
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            try:
                Requirement(line)
            except InvalidRequirement as exc:
                raise ValueError(f"{path}: invalid requirement {line!r} ({exc})") from None
            out.append(line)
    return out


def requirement_name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def is_satisfied(requirement: str, version_of: Callable[[str], str] = importlib.metadata.version) -> bool:
    """Installed at an acceptable version (extras are not followed: ``dask[distributed]`` checks dask)."""
    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate():
        return True
    try:
        installed = version_of(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return not req.specifier or req.specifier.contains(installed, prereleases=True)


@dataclass
class InstallPlan:
    torch_with_extension: str | None = None  # torch requirement for PyTorchUtils
    ensure: list[str] = field(default_factory=list)  # via pip_ensure / pip_install
    no_build_isolation: list[str] = field(default_factory=list)  # pip_install --no-build-isolation
    use_pip_ensure: bool = True

    @property
    def empty(self) -> bool:
        return not (self.torch_with_extension or self.ensure or self.no_build_isolation)

    def describe(self) -> list[str]:
        """One line per package, for the confirmation dialog."""
        lines = []
        if self.torch_with_extension:
            lines.append(f"{self.torch_with_extension} (through the PyTorch extension)")
        lines += list(self.ensure)
        lines += [f"{r} (built with --no-build-isolation)" for r in self.no_build_isolation]
        return lines


def plan_installation(requirements: Iterable[str], slicer_version: tuple[int, int],
                      pytorch_extension: bool,
                      satisfied: Callable[[str], bool] = is_satisfied) -> InstallPlan:
    """Missing requirements -> the install steps for this Slicer version."""
    plan = InstallPlan(use_pip_ensure=tuple(slicer_version) >= PIP_ENSURE_VERSION)
    for req in requirements:
        if satisfied(req):
            continue
        name = requirement_name(req)
        if name == TORCH and pytorch_extension:
            plan.torch_with_extension = req
        elif name in NO_BUILD_ISOLATION:
            plan.no_build_isolation.append(req)
        else:
            plan.ensure.append(req)
    return plan


def torch_version_requirement(requirement: str) -> str:
    """``torch==2.13.0`` -> ``==2.13.0`` (the form ``PyTorchUtilsLogic.installTorch`` takes)."""
    return str(Requirement(requirement).specifier)
