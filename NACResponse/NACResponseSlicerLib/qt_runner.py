"""Slicer side of the background runner: a ``qt.QTimer`` polls a :class:`cli_runner.CliJob`.

The pattern follows lassoan/SlicerMONAIAuto3DSeg (``MONAIAuto3DSegLib/process.py``): the child runs
in Slicer's own Python (``PythonSlicer``), a reader thread queues its output and a timer on the main
thread hands it to the GUI, so the application stays responsive and Cancel works at any time.
"""

from __future__ import annotations

import os
import shutil
import sys

import qt
import slicer

from .cli_runner import CliJob, JobResult, child_environment

POLL_INTERVAL_MS = 200


def slicerPythonExecutable() -> str:
    """``PythonSlicer`` (Slicer's interpreter launcher); ``sys.executable`` as fallback."""
    return shutil.which("PythonSlicer") or sys.executable


def moduleDirectory() -> str:
    """The folder holding ``NACResponse.py`` and the ``NACResponseLib`` package."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BackgroundTask:
    """Runs one ``nacresponse`` command in the background and reports to callbacks.

    ``onProgress(ProgressEvent)``, ``onLog(str)`` and ``onFinished(JobResult)`` are plain callables
    (any may be None); they run on the main thread, from the timer.
    """

    def __init__(self, arguments, title: str = "", onProgress=None, onLog=None, onFinished=None):
        libraryDir = moduleDirectory()
        env = dict(slicer.util.startupEnvironment())
        self.job = CliJob(arguments, title=title, python=slicerPythonExecutable(), cwd=libraryDir,
                          env=child_environment(env, libraryDir))
        if onProgress:
            self.job.progress.connect(onProgress)
        if onLog:
            self.job.log.connect(onLog)
        self.job.finished.connect(self._onFinished)
        self._userFinished = onFinished
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_INTERVAL_MS)
        self.timer.connect("timeout()", self._tick)

    def start(self) -> BackgroundTask:
        self.job.start()
        self.timer.start()
        return self

    def cancel(self) -> None:
        self.job.cancel()

    @property
    def running(self) -> bool:
        return self.job.running

    def _tick(self) -> None:
        if not self.job.poll():
            self.timer.stop()

    def _onFinished(self, result: JobResult) -> None:
        self.timer.stop()
        if self._userFinished:
            self._userFinished(result)

    def waitForCompletion(self, timeoutSeconds: float = 600.0) -> JobResult | None:
        """Block while processing Qt events (self-test and scripting only)."""
        import time

        deadline = time.monotonic() + timeoutSeconds
        while self.job.running and time.monotonic() < deadline:
            slicer.app.processEvents()
            self._tick()
            time.sleep(0.05)
        return self.job.result
