"""Widget side shared by every panel: error display, button wiring, and the background task area
(progress, log, Cancel) with the per-task dependency check.

Each panel is an object built from the module's ``.ui`` widgets, its own logic object (injected;
see ``panels.PanelLogic``), the ``TaskPanel`` and a callable returning the current parameter node.
Panel logic never touches widgets, so CI drives it on real MRML without Qt.
"""

from __future__ import annotations

import slicer
from slicer.i18n import tr as _


def guarded(handler) -> None:
    """Run a button handler; show any error in a dialog instead of losing it in the console."""
    with slicer.util.tryWithErrorDisplay(_("NACResponse: the action failed."), waitCursor=True):
        handler()


class Panel:
    """Base of the panel widgets: ``ui`` (the module's widgets), ``logic`` (this panel's logic),
    ``tasks`` (the TaskPanel) and ``parameterNode()`` (the current parameter node)."""

    def __init__(self, ui, logic, tasks, parameterNode) -> None:
        self.ui, self.logic, self.tasks, self._parameterNode = ui, logic, tasks, parameterNode

    @property
    def params(self):
        return self._parameterNode()

    def connect(self) -> None:
        """Connect this panel's widgets (called once from the module widget's setup)."""

    def connectButtons(self, pairs) -> None:
        for button, handler in pairs:
            button.connect("clicked(bool)", lambda checked, h=handler: guarded(h))

    def patient(self) -> str:
        patientId = self.params.patientId
        if not patientId:
            raise ValueError(_("Choose a patient first (Study section)."))
        return patientId


class TaskPanel:
    """The background task area: one ``nacresponse`` command at a time, with progress, log and Cancel.

    Before a task starts, only the dependency groups that task needs are checked and, after asking,
    installed (``installer.ensureDependencies``); a group that failed never blocks the others.
    """

    def __init__(self, ui, requirementsPath: str) -> None:
        self.ui, self.requirementsPath = ui, requirementsPath
        self.task = None

    def connect(self) -> None:
        self.ui.cancelButton.connect("clicked(bool)", lambda checked: self.cancel())
        self.ui.installDependenciesButton.connect("clicked(bool)", lambda checked: guarded(self.onInstallDependencies))

    def ensure(self, groups) -> None:
        """Make the dependency groups available (asks before installing); raises when they are not."""
        from .installer import ensureDependencies

        if not ensureDependencies(self.requirementsPath, groups):
            raise RuntimeError(_("Python packages for this step are missing: {groups} (see the Python console).")
                               .format(groups=", ".join(groups)))

    def run(self, arguments, title, needs=("core",), onSuccess=None, onFinished=None) -> None:
        """Start a background ``nacresponse`` command.  ``onSuccess`` runs only when it finished without
        a crash (all cases done, or some failed and the rest kept); ``onFinished(result)`` always runs."""
        from .qt_runner import BackgroundTask

        if self.task is not None and self.task.running:
            raise RuntimeError(_("A background task is already running; wait for it or cancel it."))
        self.ensure(needs)
        self.ui.logTextEdit.clear()
        self.ui.taskProgressBar.value = 0
        self.ui.taskLabel.text = _("{title}: starting...").format(title=title)
        self.ui.cancelButton.enabled = True

        def finished(result):
            self.task = None
            self.ui.cancelButton.enabled = False
            self.ui.taskLabel.text = result.message
            if result.state.name in ("SUCCEEDED", "PARTIAL"):
                self.ui.taskProgressBar.value = 100
                if onSuccess is not None:
                    with slicer.util.tryWithErrorDisplay(_("Could not show the results."), waitCursor=True):
                        onSuccess()
            if onFinished is not None:
                onFinished(result)

        self.task = BackgroundTask(arguments, title, onProgress=self._onProgress,
                                   onLog=self.ui.logTextEdit.appendPlainText, onFinished=finished).start()

    def _onProgress(self, event) -> None:
        self.ui.taskProgressBar.value = int(round(100 * event.fraction))
        self.ui.taskLabel.text = f"{event.stage}: {event.done}/{event.total} {event.message}".strip()

    def cancel(self) -> None:
        if self.task is not None and self.task.running:
            self.task.cancel()

    def onInstallDependencies(self) -> None:
        """Every group in turn; one that cannot be installed (declined, failed, needs the PyTorch
        extension) is reported and the others still go ahead."""
        import logging

        from .installer import ensureDependencies, installableGroups

        missing = []
        for group in installableGroups(self.requirementsPath):
            try:
                if not ensureDependencies(self.requirementsPath, [group]):
                    missing.append(group)
            except RuntimeError as exc:
                logging.warning(f"NACResponse: Python packages of '{group}': {exc}")
                missing.append(group)
        self.ui.taskLabel.text = (_("Python packages: all installed.") if not missing else
                                  _("Python packages missing for: {groups}.").format(groups=", ".join(missing)))
