"""The background runner of the Slicer layer, outside Slicer: progress-line parsing, a real child
process with JSON progress, exit codes, and Cancel reaching a launcher's grandchild."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "NACResponse"))

from NACResponseLib.progress import json_progress_line  # noqa: E402
from NACResponseSlicerLib import cli_runner  # noqa: E402
from NACResponseSlicerLib.cli_runner import CliJob, JobState, parse_progress_line  # noqa: E402

# ---- parsing ----------------------------------------------------------------------------------


def test_parses_the_core_progress_format():
    """Lines made by the core's own json_progress_line (the producer) round-trip."""
    event = parse_progress_line(json_progress_line(3, 12, "P004", "radiomics") + "\n")
    assert (event.stage, event.done, event.total, event.message) == ("radiomics", 3, 12, "P004")
    assert event.fraction == pytest.approx(0.25)


@pytest.mark.parametrize("line", [
    "", "nacresponse features: error: P001/pre: mask is empty", "{not json", "[1, 2]",
    '{"type": "log", "done": 1, "total": 2}', '{"type": "progress", "done": "x", "total": 2}',
    '{"type": "progress", "total": 2}',
])
def test_non_progress_lines_are_log_text(line):
    assert parse_progress_line(line) is None


def test_fraction_is_recomputed_when_missing_or_bad_and_clamped():
    assert parse_progress_line('{"type": "progress", "done": 1, "total": 4}').fraction == 0.25
    assert parse_progress_line('{"type": "progress", "done": 1, "total": 0, "fraction": NaN}').fraction == 0.0
    assert parse_progress_line('{"type": "progress", "done": 9, "total": 4, "fraction": 2.25}').fraction == 1.0


def test_command_line_and_environment():
    cmd = cli_runner.cli_command(["features", "radiomics", Path("/s"), "--jobs", 2], python="/py")
    assert cmd == ["/py", "-m", "NACResponseLib.cli", "--progress", "json", "features", "radiomics", "/s",
                   "--jobs", "2"]
    env = cli_runner.child_environment({"PYTHONPATH": "/other"}, "/mod")
    assert env["PYTHONPATH"] == "/mod" + os.pathsep + "/other" and env["PYTHONUNBUFFERED"] == "1"


@pytest.mark.parametrize("code,cancelled,state", [
    (0, False, JobState.SUCCEEDED), (1, False, JobState.PARTIAL), (2, False, JobState.FAILED),
    (130, False, JobState.CANCELLED), (-15, True, JobState.CANCELLED), (0, True, JobState.CANCELLED),
])
def test_states_follow_the_cli_exit_codes(code, cancelled, state):
    assert cli_runner.state_from_returncode(code, cancelled) is state


# ---- a real child process ---------------------------------------------------------------------

def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return path


def _job_for_script(script: Path, **kwargs) -> CliJob:
    """A CliJob whose command runs ``script`` instead of the CLI (same pipes, same process group)."""
    job = CliJob(["x"], title="test", **kwargs)
    job.command = [sys.executable, str(script)]
    return job


def test_real_child_progress_log_and_exit_code(tmp_path):
    script = _script(tmp_path, f"""
        import sys
        sys.path.insert(0, {str(ROOT / "NACResponse")!r})
        from NACResponseLib.progress import Progress
        print("warming up", flush=True)
        with Progress(3, "stage", mode="json") as p:
            for i in range(3):
                p.update(1, f"case{{i}}")
        print("nacresponse x: error: P002/pre: mask is empty", file=sys.stderr, flush=True)
        sys.exit(1)
    """)
    job = _job_for_script(script)
    events, logs, finished = [], [], []
    job.progress.connect(events.append)
    job.log.connect(logs.append)
    job.finished.connect(finished.append)
    result = job.start().wait(timeout=60)
    assert [e.done for e in events] == [1, 2, 3] and events[-1].message == "case2"
    assert logs == ["warming up", "nacresponse x: error: P002/pre: mask is empty"]
    assert result.state is JobState.PARTIAL and result.returncode == 1
    assert "mask is empty" in result.message
    assert finished == [result]  # emitted exactly once
    assert job.poll() is False


def test_a_crashed_child_is_failed_not_partial_success(tmp_path):
    """An uncaught exception also exits 1; it is a crash, not "some cases failed, the rest kept"."""
    script = _script(tmp_path, """
        raise RuntimeError("out of memory in the middle of the study")
    """)
    result = _job_for_script(script).start().wait(timeout=60)
    assert result.returncode == 1
    assert result.state is JobState.FAILED
    assert "crashed" in result.message and "out of memory" in result.message


def test_real_cli_runs_in_the_background(tmp_path):
    """The actual ``python -m NACResponseLib.cli`` with an input error: exit 2 and the CLI's message."""
    env = cli_runner.child_environment(None, str(ROOT / "NACResponse"))
    job = CliJob(["validate", str(tmp_path / "missing")], title="validate", env=env, cwd=str(ROOT / "NACResponse"))
    result = job.start().wait(timeout=120)
    assert result.state is JobState.FAILED and result.returncode == 2
    assert "not a study folder" in result.message


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")
def test_cancel_terminates_launcher_and_grandchild(tmp_path):
    """Slicer's PythonSlicer is a launcher: Cancel must reach the interpreter it starts."""
    grandchild_pid = tmp_path / "grandchild.pid"
    script = _script(tmp_path, f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import os, time; open({str(grandchild_pid)!r}, 'w').write(str(os.getpid())); time.sleep(120)"])
        print('{{"type": "progress", "stage": "s", "done": 0, "total": 5}}', flush=True)
        child.wait()
    """)
    job = _job_for_script(script)
    job.start()
    deadline = time.monotonic() + 30
    while not grandchild_pid.exists() or not grandchild_pid.read_text():
        job.poll()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int(grandchild_pid.read_text())
    job.cancel()
    result = job.wait(timeout=30)
    assert result.state is JobState.CANCELLED
    assert "cancelled" in result.message
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the launcher's child survived Cancel"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a non-reaping PID 1 in a container counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False
    return True


# ---- injected process: cancel escalation without waiting -------------------------------------

class _FakeStdout:
    def __init__(self):
        self.lines = []

    def readline(self):
        time.sleep(0.01)
        return self.lines.pop(0) if self.lines else ""


class _FakeProcess:
    def __init__(self):
        self.pid = 4242
        self.stdout = _FakeStdout()
        self.returncode = None

    def poll(self):
        return self.returncode


def test_cancel_escalates_to_kill_after_the_grace_period():
    process = _FakeProcess()
    process.stdout.lines = []
    kills = []
    now = [100.0]

    def kill_tree(proc, force=False):
        kills.append(force)
        if force:
            proc.returncode = -signal.SIGKILL if hasattr(signal, "SIGKILL") else 1

    job = CliJob(["x"], popen=lambda *a, **k: process, kill_tree=kill_tree, clock=lambda: now[0])
    job.start()
    job.cancel()
    job.cancel()  # a second click does nothing more
    assert kills == [False]
    now[0] += cli_runner.CANCEL_GRACE_SECONDS / 2
    job.poll()
    assert kills == [False]
    now[0] += cli_runner.CANCEL_GRACE_SECONDS
    result = None
    for _ in range(200):
        if not job.poll():
            result = job.result
            break
        time.sleep(0.01)
    assert kills == [False, True]
    assert result is not None and result.state is JobState.CANCELLED


def test_start_twice_is_an_error():
    process = _FakeProcess()
    job = CliJob(["x"], popen=lambda *a, **k: process, kill_tree=lambda p, force=False: None)
    job.start()
    with pytest.raises(RuntimeError):
        job.start()
