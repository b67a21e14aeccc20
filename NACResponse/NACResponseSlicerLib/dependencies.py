"""Which Python packages a task needs, which are missing, and how to install them in this Slicer
(Slicer-free planning; ``installer.py`` executes the plan inside Slicer).

``Resources/requirements.txt`` lists the packages in groups (``# [core]``, ``# [radiomics]``, ...),
the same groups as pyproject.toml's dependencies and extras.  A button asks only for the groups it
needs, so a package that failed to install blocks only the buttons that need it.  Two packages are
special:

* ``torch`` comes only through the PyTorch extension (``PyTorchUtils``) with a minimum version, so
  users get the build that matches their GPU driver (as SlicerMONAIAuto3DSeg does); it is never
  installed with pip here;
* ``pyradiomics-bhklab`` provides the ``radiomics`` module: a ``radiomics`` that is already
  importable (for example from the SlicerRadiomics extension) is used instead of building one.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

TORCH = "torch"
#: Distributions whose importable module counts as installed, whoever installed it.
PROVIDED_BY_MODULE = {"pyradiomics-bhklab": "radiomics", "pyradiomics": "radiomics"}

_GROUP = re.compile(r"^#\s*\[([a-z0-9_-]+)\]\s*$")


def read_requirement_groups(path: str | Path) -> dict[str, list[str]]:
    """``{group: [requirement, ...]}`` of a requirements file whose groups start with ``# [name]``."""
    groups: dict[str, list[str]] = {}
    current = None
    for raw in Path(path).read_text().splitlines():
        match = _GROUP.match(raw.strip())
        if match:
            current = groups.setdefault(match.group(1), [])
            continue
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            raise ValueError(f"{path}: invalid requirement {line!r} ({exc})") from None
        if current is None:
            raise ValueError(f"{path}: requirement {line!r} is not in a group (start one with '# [name]')")
        current.append(line)
    return groups


def requirements_for(groups_by_name: dict[str, list[str]], groups: Iterable[str]) -> list[str]:
    unknown = sorted(set(groups) - set(groups_by_name))
    if unknown:
        raise ValueError(f"unknown dependency groups {unknown} (known: {sorted(groups_by_name)})")
    out = []
    for group in groups:
        out += [r for r in groups_by_name[group] if r not in out]
    return out


def requirement_name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def provided_by_module(requirement: str) -> bool:
    module = PROVIDED_BY_MODULE.get(requirement_name(requirement))
    return module is not None and importlib.util.find_spec(module) is not None


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
    torch: str | None = None  # torch requirement, for the PyTorch extension
    pytorch_extension: bool = True  # is the PyTorch extension installed?
    ensure: list[str] = field(default_factory=list)  # through slicer.packaging / slicer.util.pip_install

    @property
    def empty(self) -> bool:
        return not (self.torch or self.ensure)

    @property
    def blocked(self) -> str | None:
        """Why the plan cannot be carried out here, or None."""
        if self.torch and not self.pytorch_extension:
            return (f"{self.torch} is needed: install the PyTorch extension (Extensions Manager) and restart "
                    "Slicer; it installs the torch build that matches this computer")
        return None

    def describe(self) -> list[str]:
        """One line per package, for the confirmation dialog."""
        lines = [f"{self.torch} (through the PyTorch extension)"] if self.torch else []
        return lines + list(self.ensure)


def plan_installation(requirements: Iterable[str], pytorch_extension: bool,
                      satisfied: Callable[[str], bool] = is_satisfied) -> InstallPlan:
    """Missing requirements -> the install steps."""
    plan = InstallPlan(pytorch_extension=pytorch_extension)
    for req in requirements:
        if provided_by_module(req) or satisfied(req):
            continue
        if requirement_name(req) == TORCH:
            plan.torch = req
        else:
            plan.ensure.append(req)
    return plan


def torch_version_requirement(requirement: str) -> str:
    """``torch>=2.2`` -> ``>=2.2`` (the form ``PyTorchUtilsLogic.installTorch`` takes)."""
    return str(Requirement(requirement).specifier)
