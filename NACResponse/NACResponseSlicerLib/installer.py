"""Install the Python packages a task needs into Slicer's Python, after asking the user.

Nothing here runs at import time or in a constructor: a panel calls :func:`ensureDependencies` with
the dependency groups of the pressed button.  The plan comes from ``dependencies.plan_installation``;
this file only executes it with Slicer's own tools: ``slicer.packaging`` when this Slicer has it
(detected by importing it), else ``slicer.util.pip_install``, and the PyTorch extension's
``PyTorchUtilsLogic`` (fepegar/SlicerPyTorch) for torch.
"""

from __future__ import annotations

import importlib.util
import logging

import slicer

from .dependencies import (
    InstallPlan,
    is_satisfied,
    plan_installation,
    read_requirement_groups,
    requirements_for,
    torch_version_requirement,
)

REQUESTER = "NACResponse"


def packagingModule():
    """``slicer.packaging`` (Slicer >= 5.11) or None: tried by import, not guessed from the version."""
    try:
        import slicer.packaging
    except ImportError:
        return None
    return slicer.packaging


def pytorchExtensionAvailable() -> bool:
    return importlib.util.find_spec("PyTorchUtils") is not None


def installableGroups(requirementsPath: str) -> list[str]:
    return list(read_requirement_groups(requirementsPath))


def currentPlan(requirementsPath: str, groups) -> InstallPlan:
    requirements = requirements_for(read_requirement_groups(requirementsPath), groups)
    packaging = packagingModule()
    satisfied = packaging.pip_check if packaging is not None and hasattr(packaging, "pip_check") else is_satisfied
    return plan_installation(requirements, pytorchExtensionAvailable(), satisfied=satisfied)


def ensureDependencies(requirementsPath: str, groups, askConfirmation: bool = True) -> bool:
    """Install what ``groups`` need.  Returns True when all of it is available afterwards.

    A failed installation is logged and returns False (only the tasks needing these groups stop).
    In testing mode nothing is installed (the self-test must not modify the environment).
    Raises RuntimeError when the user declines or torch needs the PyTorch extension.
    """
    plan = currentPlan(requirementsPath, groups)
    if plan.empty:
        return True
    if plan.blocked:
        raise RuntimeError(plan.blocked)
    if slicer.app.testingEnabled():
        logging.info("NACResponse: testing mode, not installing: " + ", ".join(plan.describe()))
        return False
    if askConfirmation:
        detail = "\n".join(f"- {line}" for line in plan.describe())
        question = (f"This step needs Python packages ({', '.join(groups)}) that are not installed in Slicer yet "
                    "(torch and the radiomics libraries are large; this can take several minutes).\n\n"
                    "Install them now?")
        if not slicer.util.confirmOkCancelDisplay(question, "NACResponse - install Python packages",
                                                  detailedText=detail):
            raise RuntimeError("Installation of the required Python packages was declined")
    try:
        _installTorch(plan)
        _installRegular(plan)
    except Exception as exc:  # noqa: BLE001 - pip and the extension raise many kinds; report, don't block others
        logging.error(f"NACResponse: installing {', '.join(plan.describe())} failed: {exc}")
        return False
    return currentPlan(requirementsPath, groups).empty


def _installTorch(plan: InstallPlan) -> None:
    if not plan.torch:
        return
    import PyTorchUtils

    torchLogic = PyTorchUtils.PyTorchUtilsLogic()  # slicer-api: ok (SlicerPyTorch extension)
    if torchLogic.torchInstalled():
        raise RuntimeError(f"the installed torch does not satisfy {plan.torch}: update it in the PyTorch module")
    torch = torchLogic.installTorch(askConfirmation=False, torchVersionRequirement=torch_version_requirement(plan.torch))
    if torch is None:
        raise RuntimeError("PyTorch could not be installed by the PyTorch extension")


def _installRegular(plan: InstallPlan) -> None:
    if not plan.ensure:
        return
    packaging = packagingModule()
    if packaging is not None:
        # Already confirmed above: no second prompt.
        packaging.pip_ensure(plan.ensure, prompt_install=False, requester=REQUESTER)
    else:
        slicer.util.pip_install(plan.ensure)
