"""Run a ``nacresponse`` command in a separate Python process and follow its JSON progress lines.

Slicer-free on purpose: the process factory and the process-tree killer are injectable, so CI tests
the launching, parsing and cancelling without Slicer.  In Slicer, ``qt_runner.BackgroundTask`` calls
:meth:`CliJob.poll` from a ``qt.QTimer`` so the GUI never blocks on the child process.

The child prints one JSON object per line (``NACResponseLib.progress.json_progress_line``) on
stdout; everything else it prints (warnings, the one-line error of a failed command) is log text.
"""

from __future__ import annotations

import collections
import enum
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Exit codes of ``NACResponseLib.cli`` (kept literal so this file never imports the core).
EXIT_OK, EXIT_FAILURES, EXIT_INPUT, EXIT_CANCELLED = 0, 1, 2, 130

#: Seconds a cancelled process gets to exit after SIGTERM before it is killed.
CANCEL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    done: int
    total: int
    fraction: float
    message: str = ""


def parse_progress_line(line: str) -> ProgressEvent | None:
    """A progress line of ``--progress json`` -> event; any other line (log text) -> None.

    Tolerant by design: a malformed line must never stop the runner, it is shown as log text.
    """
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("type") != "progress":
        return None
    try:
        done, total = int(obj["done"]), int(obj["total"])
    except (KeyError, TypeError, ValueError):
        return None
    fraction = obj.get("fraction")
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not math.isfinite(fraction):
        fraction = done / total if total > 0 else 0.0
    fraction = min(1.0, max(0.0, float(fraction)))
    return ProgressEvent(stage=str(obj.get("stage") or ""), done=done, total=total, fraction=fraction,
                         message=str(obj.get("message") or ""))


def cli_command(arguments: Sequence[object], python: str | None = None) -> list[str]:
    """The full command line: ``<python> -m NACResponseLib.cli --progress json <arguments>``."""
    return [python or sys.executable, "-m", "NACResponseLib.cli", "--progress", "json",
            *(str(a) for a in arguments)]


def child_environment(base: dict[str, str] | None, library_dir: str | None) -> dict[str, str]:
    """Environment for the child: ``library_dir`` (the folder holding NACResponseLib) first on
    PYTHONPATH, unbuffered output so progress arrives line by line."""
    env = dict(os.environ if base is None else base)
    if library_dir:
        existing = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = library_dir + (os.pathsep + existing if existing else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def new_process_group_options() -> dict[str, object]:
    """Popen options that put the child in its own process group, so Cancel reaches the whole tree
    (Slicer's ``PythonSlicer`` is a launcher that starts the real interpreter as a grandchild)."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {"start_new_session": True}


def terminate_process_tree(process, force: bool = False) -> None:
    """SIGTERM (or SIGKILL with ``force``) to the child's process group; ``taskkill /T`` on Windows.

    SIGTERM lets ``nacresponse`` set its cancel token and exit 130 keeping finished work.
    """
    if process.poll() is not None:
        return
    if os.name == "nt":
        subprocess.run(["taskkill", "/PID", str(process.pid), "/T", "/F"], capture_output=True, check=False)
        return
    try:
        os.killpg(process.pid, signal.SIGKILL if force else signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        # Not a group leader (a custom popen) or already gone: signal the process itself.
        try:
            process.kill() if force else process.terminate()
        except ProcessLookupError:
            pass


class Signal:
    """A minimal pure-Python signal: ``connect(callback)``, ``emit(*args)``."""

    def __init__(self) -> None:
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        for callback in list(self._callbacks):
            callback(*args)


class JobState(enum.Enum):
    NOT_STARTED = "not started"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "finished with failures"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class JobResult:
    state: JobState
    returncode: int | None
    message: str  # for the user: the command's own error line, or a summary
    log: tuple[str, ...]


#: First line Python prints for an uncaught exception.  ``nacresponse`` turns every expected error into
#: a one-line message, so a traceback means the command crashed: its exit code 1 is then not the
#: "some cases failed, the rest kept" of the CLI's contract.
TRACEBACK_LINE = "Traceback (most recent call last):"


def state_from_returncode(returncode: int, cancel_requested: bool, crashed: bool = False) -> JobState:
    if cancel_requested or returncode == EXIT_CANCELLED:
        return JobState.CANCELLED
    if returncode == EXIT_OK:
        return JobState.SUCCEEDED
    if returncode == EXIT_FAILURES and not crashed:
        return JobState.PARTIAL
    return JobState.FAILED


_EOF = object()


class CliJob:
    """One background ``nacresponse`` command.

    ``start()`` launches it; ``poll()`` (call it from a timer) delivers queued output as ``progress``
    (ProgressEvent) and ``log`` (str) signals and, once the process has exited and its output is
    drained, emits ``finished`` (JobResult) exactly once.  ``cancel()`` terminates the process tree.
    """

    def __init__(self, arguments: Sequence[object], *, title: str = "", python: str | None = None,
                 cwd: str | None = None, env: dict[str, str] | None = None,
                 popen: Callable[..., object] = subprocess.Popen,
                 kill_tree: Callable[..., None] = terminate_process_tree,
                 clock: Callable[[], float] = time.monotonic, log_lines: int = 500):
        self.command = cli_command(arguments, python)
        self.title = title or " ".join(str(a) for a in arguments[:2])
        self.cwd, self.env = cwd, env
        self._popen, self._kill_tree, self._clock = popen, kill_tree, clock
        self.progress, self.log, self.finished = Signal(), Signal(), Signal()
        self.state = JobState.NOT_STARTED
        self.last_progress: ProgressEvent | None = None
        self.result: JobResult | None = None
        self._log = collections.deque(maxlen=log_lines)
        self._queue: queue.Queue = queue.Queue()
        self._process = None
        self._reader: threading.Thread | None = None
        self._eof = False
        self._cancel_time: float | None = None
        self._forced = False
        self.crashed = False  # the child printed a Python traceback

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> CliJob:
        if self.state is not JobState.NOT_STARTED:
            raise RuntimeError(f"{self.title}: already started")
        self._process = self._popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, encoding="utf-8", errors="replace", bufsize=1, cwd=self.cwd, env=self.env,
            **new_process_group_options())
        self.state = JobState.RUNNING
        self._reader = threading.Thread(target=self._read_output, name=f"nacresponse-{self.title}", daemon=True)
        self._reader.start()
        return self

    def _read_output(self) -> None:
        stream = self._process.stdout
        try:
            for line in iter(stream.readline, ""):
                self._queue.put(line.rstrip("\r\n"))
        finally:
            self._queue.put(_EOF)

    @property
    def running(self) -> bool:
        return self.state is JobState.RUNNING

    @property
    def pid(self) -> int | None:
        return getattr(self._process, "pid", None)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_time is not None

    def cancel(self) -> None:
        """Ask the process tree to stop (SIGTERM); ``poll`` kills it if it outlives the grace time."""
        if not self.running or self.cancel_requested:
            return
        self._cancel_time = self._clock()
        self.log.emit("Cancelling...")
        self._kill_tree(self._process)

    def poll(self) -> bool:
        """Deliver pending output; finish when done.  Returns True while the job is still running."""
        if not self.running:
            return False
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _EOF:
                self._eof = True
                continue
            event = parse_progress_line(item)
            if event is not None:
                self.last_progress = event
                self.progress.emit(event)
            elif item.strip():
                if item.startswith(TRACEBACK_LINE):
                    self.crashed = True
                self._log.append(item)
                self.log.emit(item)
        if (self.cancel_requested and not self._forced
                and self._clock() - self._cancel_time > CANCEL_GRACE_SECONDS):
            self._forced = True
            self._kill_tree(self._process, force=True)
        if self._eof and self._process.poll() is not None:
            self._finish(self._process.returncode)
            return False
        return True

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> JobResult | None:
        """Poll until finished (for scripts and tests; the GUI uses a timer instead)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll():
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(interval)
        return self.result

    def _finish(self, returncode: int) -> None:
        self.state = state_from_returncode(returncode, self.cancel_requested, self.crashed)
        self.result = JobResult(self.state, returncode, self._summary(returncode), tuple(self._log))
        self.finished.emit(self.result)

    def _summary(self, returncode: int) -> str:
        if self.state is JobState.CANCELLED:
            return f"{self.title}: cancelled; finished work is kept and a rerun resumes"
        if self.state is JobState.SUCCEEDED:
            return f"{self.title}: done"
        errors = [line for line in self._log if "error" in line.lower()]
        detail = errors[-1] if errors else (self._log[-1] if self._log else f"exit code {returncode}")
        if self.state is JobState.PARTIAL:
            return f"{self.title}: finished, some cases failed ({detail})"
        if self.crashed:
            return f"{self.title}: crashed ({self._log[-1] if self._log else detail}); see the log"
        return f"{self.title}: failed ({detail})"
