"""What every panel shares: the open study (logic side) and, on the widget side, error display,
the background task with progress, log and Cancel, and the first-use dependency check.

The panel modules (``*_panel.py``) each define a ``...Logic`` mixin (scene work, no widgets; the
self-test drives it) and a ``...Handlers`` mixin (reads the .ui widgets and the parameter node, calls
the logic).  ``panels.py`` composes them into the module's Logic and Widget.
"""

from __future__ import annotations

import slicer
from slicer.i18n import tr as _


class StudyContext:
    """The study folder the panels work on (a ``NACResponseLib.study.store.StudyStore``)."""

    store = None

    def _requireStore(self):
        if self.store is None:
            raise ValueError("Open a study folder first (Study section).")
        return self.store

    def reloadCohort(self):
        """Re-read the manifest after a background command added rows (e.g. new segmentations)."""
        from NACResponseLib.study.store import StudyStore

        self.store = StudyStore(self._requireStore().root)
        return self.store

    def readTable(self, name: str):
        store = self._requireStore()
        return store.read_table(name) if store.has_table(name) else None

    def ensureDependencies(self, requirementsPath: str) -> bool:
        from .installer import ensureDependencies

        return ensureDependencies(requirementsPath)

    def runInBackground(self, arguments, title, onProgress=None, onLog=None, onFinished=None):
        from .qt_runner import BackgroundTask

        return BackgroundTask(arguments, title, onProgress=onProgress, onLog=onLog, onFinished=onFinished).start()


class TaskHandlers:
    """Widget side: ``self.ui``, ``self.logic`` and ``self._parameterNode`` come from the Widget."""

    _task = None
    _dependenciesChecked = False

    def connectTaskPanel(self) -> None:
        self.ui.cancelButton.connect("clicked(bool)", lambda checked: self.onCancel())
        self.ui.installDependenciesButton.connect("clicked(bool)", lambda checked: self._guarded(self.onInstallDependencies))

    def _guarded(self, handler) -> None:
        with slicer.util.tryWithErrorDisplay(_("NACResponse: the action failed."), waitCursor=True):
            handler()

    def _connectButtons(self, pairs) -> None:
        for button, handler in pairs:
            button.connect("clicked(bool)", lambda checked, h=handler: self._guarded(h))

    def _patient(self) -> str:
        patientId = self._parameterNode.patientId
        if not patientId:
            raise ValueError(_("Choose a patient first (Study section)."))
        return patientId

    def _ensureDependencies(self) -> None:
        if not self._dependenciesChecked:
            self._dependenciesChecked = self.logic.ensureDependencies(self.resourcePath("requirements.txt"))

    def _runTask(self, arguments, title, onSuccess=None) -> None:
        """Start a background ``nacresponse`` command (one at a time); ``onSuccess`` may start the next."""
        if self._task is not None and self._task.running:
            raise RuntimeError(_("A background task is already running; wait for it or cancel it."))
        self._ensureDependencies()
        self.ui.logTextEdit.clear()
        self.ui.taskProgressBar.value = 0
        self.ui.taskLabel.text = _("{title}: starting...").format(title=title)
        self.ui.cancelButton.enabled = True

        def onFinished(result):
            self._task = None
            self.ui.cancelButton.enabled = False
            self.ui.taskLabel.text = result.message
            if result.state.name in ("SUCCEEDED", "PARTIAL"):
                self.ui.taskProgressBar.value = 100
                if onSuccess is not None:
                    with slicer.util.tryWithErrorDisplay(_("Could not show the results."), waitCursor=True):
                        onSuccess()

        self._task = self.logic.runInBackground(arguments, title, onProgress=self._onTaskProgress,
                                                onLog=self.ui.logTextEdit.appendPlainText, onFinished=onFinished)

    def _onTaskProgress(self, event) -> None:
        self.ui.taskProgressBar.value = int(round(100 * event.fraction))
        self.ui.taskLabel.text = f"{event.stage}: {event.done}/{event.total} {event.message}".strip()

    def cancelTask(self) -> None:
        if self._task is not None and self._task.running:
            self._task.cancel()

    def onCancel(self) -> None:
        self.cancelTask()

    def onInstallDependencies(self) -> None:
        self._dependenciesChecked = False
        self._ensureDependencies()
        self.ui.taskLabel.text = _("Python packages: all installed.") if self._dependenciesChecked else \
            _("Python packages: some are missing (see the Python console).")
