"""Cancel stops within seconds whichever way it arrives, keeps finished work, and leaves no process.

Real signals to real processes: a small driver runs ``cli.main`` with one command whose tasks
nap on a process pool, and the test signals it the way a terminal, the Slicer runner
(SIGTERM to the process group), a closed terminal (SIGHUP) or ``kill -9`` would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and process groups")

NACRESPONSE = str(Path(__file__).resolve().parents[1] / "NACResponse")
N_TASKS = 200

DRIVER = textwrap.dedent(f"""
    import argparse
    import sys
    import time


    def nap(i):
        time.sleep(0.3)
        return i


    def naps(args):
        from NACResponseLib.runner import Task, run_tasks

        tasks = [Task(key=f"t{{i}}", function="naps_driver:nap", kwargs={{"i": i}}) for i in range({N_TASKS})]
        run_tasks(tasks, args.out, mode="process", jobs=2, progress_mode="none", cancel=args.cancel)
        return 0


    def parser():
        p = argparse.ArgumentParser()
        p.add_argument("--progress", default="none")
        p.add_argument("-v", "--verbose", action="store_true")
        sub = p.add_subparsers(dest="command")
        q = sub.add_parser("naps")
        q.add_argument("out")
        q.set_defaults(func=naps)
        return p


    if __name__ == "__main__":
        from NACResponseLib import cli

        cli.build_parser = parser
        sys.exit(cli.main(sys.argv[1:]))
""")


def _results(folder: Path) -> int:
    return len(list(folder.glob("*.json"))) if folder.is_dir() else 0


def _group_gone(pgid: int, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def _start(tmp_path: Path):
    (tmp_path / "naps_driver.py").write_text(DRIVER)
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([NACRESPONSE, str(tmp_path)])}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "naps_driver.py"), "naps", str(out)], env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _results(out) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the driver never started its tasks"
        time.sleep(0.05)
    return proc, out


SENDERS = {
    "SIGTERM to the parent": lambda pid: os.kill(pid, signal.SIGTERM),
    "SIGTERM to the group (Slicer Cancel)": lambda pid: os.killpg(pid, signal.SIGTERM),
    "SIGINT to the group (Ctrl-C)": lambda pid: os.killpg(pid, signal.SIGINT),
    "SIGHUP to the parent": lambda pid: os.kill(pid, signal.SIGHUP),
    "a second Ctrl-C": lambda pid: (os.killpg(pid, signal.SIGINT), time.sleep(0.2), os.killpg(pid, signal.SIGINT)),
}


@pytest.mark.parametrize("how", list(SENDERS))
def test_signal_cancels_within_seconds_and_keeps_finished_work(tmp_path, how):
    proc, out = _start(tmp_path)
    sent = time.monotonic()
    SENDERS[how](proc.pid)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 130, err[-2000:]
    assert took < 10, f"exit took {took:.1f} s"
    assert _group_gone(proc.pid, 15) is not None, "workers or the fork server outlived the command"
    kept = _results(out)
    time.sleep(1.0)
    assert _results(out) == kept, "tasks kept running after the cancel"
    assert 2 <= kept < N_TASKS
    assert "cancelled" in err and "Traceback" not in err


def test_workers_die_with_a_killed_parent(tmp_path):
    proc, out = _start(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    gone = _group_gone(proc.pid, 15)
    assert gone is not None, "workers survived kill -9 of their parent"
    kept = _results(out)
    time.sleep(1.0)
    assert _results(out) == kept < N_TASKS


def test_python_api_cancel_stops_the_pool(tmp_path, monkeypatch):
    from NACResponseLib.errors import CancelledError
    from NACResponseLib.progress import CancelToken
    from NACResponseLib.runner import Task, run_tasks

    (tmp_path / "naps_driver.py").write_text(DRIVER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([NACRESPONSE, str(tmp_path)]))
    out = tmp_path / "results"
    token = CancelToken()

    def cancel_after_first_results():
        while _results(out) < 2:
            time.sleep(0.05)
        token.cancel()

    threading.Thread(target=cancel_after_first_results, daemon=True).start()
    tasks = [Task(key=f"t{i}", function="naps_driver:nap", kwargs={"i": i}) for i in range(N_TASKS)]
    start = time.monotonic()
    with pytest.raises(CancelledError):
        run_tasks(tasks, out, mode="process", jobs=2, progress_mode="none", cancel=token)
    kept = _results(out)
    time.sleep(1.0)
    assert _results(out) == kept < N_TASKS
    assert time.monotonic() - start < 120


@pytest.mark.slow
def test_cli_radiomics_cancel_marks_the_run_cancelled(copy_study):
    """The probe end to end: SIGTERM to ``nacresponse features radiomics`` on a process pool."""
    out = copy_study.root / "work" / "radiomics"
    env = {**os.environ, "PYTHONPATH": NACRESPONSE}
    proc = subprocess.Popen([sys.executable, "-m", "NACResponseLib.cli", "--progress", "none", "features",
                             "radiomics", str(copy_study.root), "--jobs", "2"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _results(out) < 1:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - sent < 15, err[-2000:]
    assert _group_gone(proc.pid, 15) is not None
    kept = _results(out)
    time.sleep(1.0)
    assert _results(out) == kept
    assert [r["status"] for r in copy_study.runs()] == ["cancelled"]
