"""The cohort runner: serial / process pool / Dask, resume, failures, progress, cancel."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from NACResponseLib.errors import CancelledError, InputError
from NACResponseLib.progress import CancelToken
from NACResponseLib.runner import Task, read_record, run_tasks

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _square_tasks(n, delay=0.0):
    return [Task(key=f"t{i}", function="test_runner_tasks:square", kwargs={"x": i, "delay": delay}) for i in range(n)]


def test_serial_and_pool_give_same_results_in_task_order(tmp_path):
    tasks = _square_tasks(6)
    serial = run_tasks(tasks, tmp_path / "a", mode="serial", progress_mode="none")
    pool = run_tasks(tasks, tmp_path / "b", mode="process", jobs=2, progress_mode="none")
    strip = lambda res: {k: {"x": v["x"], "y": v["y"]} for k, v in res.items()}  # noqa: E731
    assert list(serial.results) == [t.key for t in tasks] == list(pool.results)
    assert strip(serial.results) == strip(pool.results) == {f"t{i}": {"x": i, "y": i * i} for i in range(6)}
    assert serial.computed == pool.computed == 6 and pool.workers == 2
    # the pool really used other processes
    import os

    assert all(v["pid"] != os.getpid() for v in pool.results.values())


def test_rerun_skips_finished_tasks_and_retries_failed_ones(tmp_path):
    tasks = [Task(key=f"t{i}", function="test_runner_tasks:fail_on", kwargs={"x": i, "bad": 2}) for i in range(4)]
    first = run_tasks(tasks, tmp_path, mode="serial", progress_mode="none")
    assert first.computed == 3 and first.failed == 1
    assert "x == 2 is not allowed" in first.failures["t2"] and "ValueError" in first.failures["t2"]
    assert "1 failed" in first.message() and "t2" in first.message()
    second = run_tasks(tasks, tmp_path, mode="serial", progress_mode="none")
    assert second.reused == 3 and second.computed == 0 and second.failed == 1  # failure retried, still fails
    fixed = [Task(key=t.key, function=t.function, kwargs={**t.kwargs, "bad": -1}) for t in tasks]
    third = run_tasks(fixed, tmp_path, mode="serial", progress_mode="none")
    assert third.failed == 0 and third.computed == 4  # kwargs changed -> new digests for all


def test_digest_follows_input_file_content(tmp_path):
    f = tmp_path / "n.txt"
    f.write_text("1.5")
    task = Task(key="read", function="test_runner_tasks:read_number", kwargs={"path": str(f)},
                inputs=(str(f),), identity={"name": "n.txt"})
    assert run_tasks([task], tmp_path / "r", mode="serial", progress_mode="none").results["read"] == 1.5
    assert run_tasks([task], tmp_path / "r", mode="serial", progress_mode="none").reused == 1
    import os
    import time

    f.write_text("2.5")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = run_tasks([task], tmp_path / "r", mode="serial", progress_mode="none")
    assert again.computed == 1 and again.results["read"] == 2.5


def test_result_files_are_complete_json(tmp_path):
    tasks = _square_tasks(3)
    run_tasks(tasks, tmp_path, mode="serial", progress_mode="none")
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 3 and not list(tmp_path.glob(".*"))  # no temporary leftovers
    for t in tasks:
        record = read_record(tmp_path, t.digest())
        assert record["status"] == "done" and record["key"] == t.key
    # a corrupt (truncated) record counts as unfinished and is recomputed
    files[0].write_text('{"status": "do')
    assert run_tasks(tasks, tmp_path, mode="serial", progress_mode="none").computed == 1


def test_progress_callback_and_duplicate_keys(tmp_path):
    seen = []
    run_tasks(_square_tasks(3), tmp_path, mode="serial", progress_mode="none",
              progress=lambda d, t, m: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    run_tasks(_square_tasks(3), tmp_path, mode="serial", progress_mode="none",
              progress=lambda d, t, m: seen.append((d, t, m)))
    assert seen[-1][:2] == (3, 3) and "already finished" in seen[-1][2]
    with pytest.raises(InputError, match="duplicate"):
        run_tasks(_square_tasks(2) + _square_tasks(1), tmp_path, mode="serial", progress_mode="none")


def test_json_progress_lines(tmp_path, capsys):
    run_tasks(_square_tasks(2), tmp_path, mode="serial", progress_mode="json", stage="demo")
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["done"] for x in lines] == [1, 2] and lines[-1]["fraction"] == 1.0 and lines[0]["stage"] == "demo"


def test_cancel_keeps_finished_work(tmp_path):
    token = CancelToken()

    def cancel_after_two(done, total, message):
        if done == 2:
            token.cancel()

    tasks = _square_tasks(6)
    with pytest.raises(CancelledError):
        run_tasks(tasks, tmp_path, mode="serial", progress_mode="none", progress=cancel_after_two, cancel=token)
    assert len(list(tmp_path.glob("*.json"))) == 2
    resumed = run_tasks(tasks, tmp_path, mode="serial", progress_mode="none")
    assert resumed.reused == 2 and resumed.computed == 4


def test_pool_cancel(tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        run_tasks(_square_tasks(4, delay=0.2), tmp_path, mode="process", jobs=2, progress_mode="none", cancel=token)


def test_workers_run_single_threaded(tmp_path):
    task = Task(key="threads", function="test_runner_tasks:thread_settings")
    out = run_tasks([task, Task(key="other", function="test_runner_tasks:square", kwargs={"x": 1})], tmp_path,
                    mode="process", jobs=2, progress_mode="none")
    assert out.results["threads"] == {"itk": 1, "omp": "1"}


def test_bad_mode_and_missing_scheduler(tmp_path):
    with pytest.raises(InputError, match="mode"):
        run_tasks(_square_tasks(1), tmp_path, mode="threads")
    with pytest.raises(InputError, match="scheduler"):
        run_tasks(_square_tasks(1), tmp_path, mode="dask")


@pytest.mark.slow
def test_dask_local_cluster_matches_serial(tmp_path):
    from distributed import Client

    from NACResponseLib.runner import local_cluster

    tasks = _square_tasks(5) + [Task(key="bad", function="test_runner_tasks:fail_on", kwargs={"x": 1, "bad": 1})]
    serial = run_tasks(tasks, tmp_path / "s", mode="serial", progress_mode="none")
    with local_cluster(2, env={"PYTHONPATH": str(HERE)}) as cluster, Client(cluster) as client:
        via_address = run_tasks(tasks, tmp_path / "d", scheduler=cluster.scheduler_address, progress_mode="none")
        via_client = run_tasks(tasks, tmp_path / "d", scheduler=client, progress_mode="none")
    strip = lambda res: {k: (v["y"] if isinstance(v, dict) else v) for k, v in res.items()}  # noqa: E731
    assert strip(via_address.results) == strip(serial.results)
    assert via_address.failed == 1 and "not allowed" in via_address.failures["bad"]
    assert via_address.mode == "dask" and via_address.workers == 2
    assert via_client.reused == 5 and via_client.computed == 0


def test_input_failures_are_final_for_their_digest(tmp_path):
    tasks = [Task(key="bad", function="test_runner_tasks:reject", kwargs={"x": 3}),
             Task(key="ok", function="test_runner_tasks:square", kwargs={"x": 2})]
    first = run_tasks(tasks, tmp_path, mode="serial", progress_mode="none")
    assert first.failures == {"bad": "input 3 is unusable"} and first.computed == 1
    second = run_tasks(tasks, tmp_path, mode="serial", progress_mode="none")
    assert second.computed == 0 and second.reused == 1 and second.failures == {"bad": "input 3 is unusable"}


def test_longest_first_order_and_results_in_task_order(tmp_path):
    from NACResponseLib.runner import longest_first

    tasks = _square_tasks(5)
    estimate = {"t0": 2, "t1": 9, "t2": 5, "t3": 9, "t4": 1}
    assert [t.key for t in longest_first(tasks, None)] == [t.key for t in tasks]
    # decreasing cost, ties keep their order (stable)
    assert [t.key for t in longest_first(tasks, lambda t: estimate[t.key])] == ["t1", "t3", "t2", "t0", "t4"]
    # one pool worker runs tasks in submission order: the recorded start times follow the costs
    seen = []

    def cost(t):
        seen.append(t.key)
        return estimate[t.key]

    out = run_tasks(tasks, tmp_path, mode="process", jobs=1, progress_mode="none", cost=cost)
    assert sorted(seen) == sorted(t.key for t in tasks)  # cost asked once per unfinished task
    records = [read_record(tmp_path, out.digests[t.key]) for t in tasks]
    started = sorted(records, key=lambda r: r["started"])
    assert [r["key"] for r in started] == ["t1", "t3", "t2", "t0", "t4"]
    assert list(out.results) == [t.key for t in tasks]  # results keep task order
    seen.clear()
    again = run_tasks(tasks, tmp_path, mode="process", jobs=1, progress_mode="none", cost=cost)
    assert again.reused == 5 and seen == []  # no cost estimate (e.g. reading masks) on a finished rerun


def test_unchanged_means_nothing_ran(tmp_path):
    tasks = [Task(key="bad", function="test_runner_tasks:reject", kwargs={"x": 3}),
             Task(key="ok", function="test_runner_tasks:square", kwargs={"x": 2})]
    first = run_tasks(tasks, tmp_path / "a", mode="serial", progress_mode="none")
    assert not first.unchanged
    second = run_tasks(tasks, tmp_path / "a", mode="serial", progress_mode="none")
    assert second.unchanged and second.reused_failed == 1  # a final bad-input failure does not rerun
    crash = [Task(key="crash", function="test_runner_tasks:fail_on", kwargs={"x": 1, "bad": 1})]
    run_tasks(crash, tmp_path / "b", mode="serial", progress_mode="none")
    retried = run_tasks(crash, tmp_path / "b", mode="serial", progress_mode="none")
    assert retried.failed == 1 and retried.reused_failed == 0 and not retried.unchanged  # crashes are retried


def test_prestarted_fork_server_runs_pools(tmp_path):
    from NACResponseLib.runner import prestart_workers

    prestart_workers(["test_runner_tasks"])
    prestart_workers(["json"])  # already running: no effect
    out = run_tasks(_square_tasks(3), tmp_path, mode="process", jobs=2, progress_mode="none")
    assert out.computed == 3 and {k: v["y"] for k, v in out.results.items()} == {"t0": 0, "t1": 1, "t2": 4}
