"""Install NACResponse's Python dependencies into Slicer's Python, after asking the user.

Nothing here runs at import time or in a constructor: the widget calls :func:`ensureDependencies`
when the user first starts work that needs the core libraries.  The plan comes from
``dependencies.plan_installation``; this file only executes it with Slicer's own tools:
``slicer.packaging.pip_ensure`` (Slicer >= 5.11, Base/Python/slicer/packaging.py),
``slicer.util.pip_install`` (Slicer 5.10) and the PyTorch extension's ``PyTorchUtilsLogic``
(fepegar/SlicerPyTorch) for torch when that extension is installed.
"""

from __future__ import annotations

import importlib.util
import logging

import slicer

from .dependencies import InstallPlan, plan_installation, read_requirements, torch_version_requirement

REQUESTER = "NACResponse"


def slicerVersion() -> tuple[int, int]:
    return (int(slicer.app.majorVersion), int(slicer.app.minorVersion))


def pytorchExtensionAvailable() -> bool:
    return importlib.util.find_spec("PyTorchUtils") is not None


def _satisfiedChecker():
    if slicerVersion() >= (5, 11):
        import slicer.packaging

        return slicer.packaging.pip_check
    from .dependencies import is_satisfied

    return is_satisfied


def currentPlan(requirementsPath: str) -> InstallPlan:
    return plan_installation(read_requirements(requirementsPath), slicerVersion(), pytorchExtensionAvailable(),
                             satisfied=_satisfiedChecker())


def ensureDependencies(requirementsPath: str, askConfirmation: bool = True) -> bool:
    """Install what is missing.  Returns True when everything is available afterwards.

    In testing mode nothing is installed (the self-test must not modify the environment).
    Raises RuntimeError when the user declines.
    """
    plan = currentPlan(requirementsPath)
    if plan.empty:
        return True
    if slicer.app.testingEnabled():
        logging.info("NACResponse: testing mode, not installing: " + ", ".join(plan.describe()))
        return False
    if askConfirmation:
        detail = "\n".join(f"- {line}" for line in plan.describe())
        question = ("NACResponse needs Python packages that are not installed in Slicer yet "
                    "(torch and the radiomics libraries are large; this can take several minutes).\n\n"
                    "Install them now?")
        if not slicer.util.confirmOkCancelDisplay(question, "NACResponse - install Python packages",
                                                  detailedText=detail):
            raise RuntimeError("Installation of the required Python packages was declined")
    _installTorch(plan)
    _installRegular(plan)
    _installNoBuildIsolation(plan)
    return currentPlan(requirementsPath).empty


def _installTorch(plan: InstallPlan) -> None:
    if not plan.torch_with_extension:
        return
    import PyTorchUtils

    torchLogic = PyTorchUtils.PyTorchUtilsLogic()  # slicer-api: ok (SlicerPyTorch extension)
    if not torchLogic.torchInstalled():
        torch = torchLogic.installTorch(askConfirmation=False,
                                        torchVersionRequirement=torch_version_requirement(plan.torch_with_extension))
        if torch is None:
            raise RuntimeError("PyTorch could not be installed by the PyTorch extension")


def _installRegular(plan: InstallPlan) -> None:
    if not plan.ensure:
        return
    if plan.use_pip_ensure:
        import slicer.packaging

        # Already confirmed above: no second prompt.
        slicer.packaging.pip_ensure(plan.ensure, prompt_install=False, requester=REQUESTER)
    else:
        slicer.util.pip_install(plan.ensure)


def _installNoBuildIsolation(plan: InstallPlan) -> None:
    # pyradiomics 3.0.1 has no wheel for Python >= 3.10: build it against the numpy just installed.
    for requirement in plan.no_build_isolation:
        slicer.util.pip_install(["--no-build-isolation", requirement])
