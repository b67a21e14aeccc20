"""The cohort runner: many independent tasks over a serial loop, a process pool or a Dask cluster.

Why a runner of our own: pyradiomics' batch mode parallelises across cases only; we split work
per (image, mask) and need the same resumable, fault-tolerant loop for later stages (segmentation
inference, MC detection; deep features batch through one loaded network instead, keyed the same
way, see deep/cohort.py).  Properties:

* **Resumable** - each finished task's result is written atomically to
  ``<results_dir>/<digest>.json`` where the digest hashes the task's function, identity,
  input-file contents and version salt.  A rerun skips finished tasks; killing a run loses only
  the tasks that were running.  Results are written by the worker itself, so a dead parent
  loses nothing that finished.
* **Fault-tolerant** - an exception in a task is recorded (``<digest>.failed.json``) with its
  message, the run goes on, and the summary lists failures.  A bad-input failure (a ``NACError``)
  is final for its digest (inputs and parameters unchanged) and is reported again on rerun without
  recomputing; other failures (crashes, lost workers) are retried.
* **Executors** - ``serial`` (in-process, for debugging and tiny jobs), ``process`` (a local
  ``ProcessPoolExecutor``, default) and ``dask`` (a ``dask.distributed`` scheduler address or
  Client; workers must see the same file paths, e.g. a shared file system).
* **Threads** - workers run with one thread each (SimpleITK, OpenMP, BLAS), so N workers use N
  cores without oversubscription.
* **Longest first** - given a ``cost`` estimate, the pool and Dask start the costliest unfinished
  tasks first (longest-processing-time-first), so the workers run out of work together instead of
  one worker finishing a large task alone at the end.
* **Progress and cancel** - a :class:`~NACResponseLib.progress.Progress` (bar / JSON lines /
  callback) and a :class:`~NACResponseLib.progress.CancelToken` checked while waiting.  Cancel
  (the token, or a KeyboardInterrupt from the CLI's signal handler) terminates the pool's workers
  at once instead of letting them drain the queue, and raises :class:`CancelledError`; finished
  tasks stay on disk.  Workers ignore SIGINT/SIGHUP (a terminal sends them to the whole process
  group; the parent decides) and exit by themselves within a second when the parent dies, even by
  ``kill -9`` (a watchdog thread, POSIX).

Task functions are referenced by import path (``"package.module:function"``) and take JSON-
serialisable keyword arguments, so tasks pickle cheaply and hash stably; the return value must be
JSON-serialisable (floats round-trip exactly).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .errors import CancelledError, InputError, NACError
from .progress import CancelToken, Progress, ProgressCallback
from .provenance import read_json, result_digest, strict_json

log = logging.getLogger(__name__)

MODES = ("serial", "process", "dask")
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
_POLL_S = 0.2
_WATCHDOG_S = 0.5


@dataclass(frozen=True)
class Task:
    """One unit of work.

    ``key`` names the task for people (unique within a run); ``function`` is an import path
    ``"module:function"`` called as ``function(**kwargs)``.  The result digest hashes
    ``function``, ``identity`` (default: ``kwargs``), the SHA-256 of every file in ``inputs`` and
    ``version``; pass an ``identity`` without absolute paths so a moved study keeps its results.
    """

    key: str
    function: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    identity: dict[str, Any] | None = None
    version: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # carried to the result, not hashed

    def digest(self) -> str:
        ident = self.kwargs if self.identity is None else self.identity
        return result_digest(self.function, ident, self.inputs, self.version)


@dataclass
class RunSummary:
    """Outcome of :func:`run_tasks`.  ``results`` / ``failures`` are keyed by task key."""

    total: int = 0
    computed: int = 0
    reused: int = 0
    failed: int = 0
    reused_failed: int = 0  # of ``failed``: bad-input failures reported from an earlier run
    cancelled: bool = False
    seconds: float = 0.0
    mode: str = "serial"
    workers: int = 1
    results: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # task key -> result digest

    @property
    def done(self) -> int:
        return self.computed + self.reused

    @property
    def unchanged(self) -> bool:
        """True when nothing ran: every task was finished or finally failed in an earlier run."""
        return not self.cancelled and self.computed == 0 and self.failed == self.reused_failed

    def message(self, max_failures: int = 10) -> str:
        text = (f"{self.done} done ({self.computed} computed, {self.reused} already finished), "
                f"{self.failed} failed, of {self.total} tasks in {self.seconds:.1f} s "
                f"[{self.mode}, {self.workers} worker(s)]")
        if self.cancelled:
            text += "; CANCELLED (a rerun resumes)"
        for i, (key, err) in enumerate(self.failures.items()):
            if i == max_failures:
                text += f"\n  ... and {len(self.failures) - max_failures} more failures"
                break
            text += f"\n  FAILED {key}: {err}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "computed": self.computed, "reused": self.reused, "failed": self.failed,
                "reused_failed": self.reused_failed, "cancelled": self.cancelled, "seconds": round(self.seconds, 3), "mode": self.mode,
                "workers": self.workers, "failures": dict(self.failures)}


# ---- worker side ------------------------------------------------------------------------------

_threads_limited = False


def limit_threads() -> None:
    """One thread per worker for SimpleITK/ITK, OpenMP and BLAS (idempotent, cheap)."""
    global _threads_limited
    if _threads_limited:
        return
    for name in _THREAD_ENV:
        os.environ[name] = "1"
    try:
        import SimpleITK as sitk

        sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)
    except ImportError:  # pragma: no cover - SimpleITK is a core dependency
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    _threads_limited = True


def _worker_init(parent_pid: int | None = None) -> None:
    limit_threads()
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    if parent_pid is not None and os.name == "posix":
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="nacresponse-watchdog", daemon=True).start()


def _process_alive(pid: int) -> bool:
    """False once ``pid`` has exited (a zombie counts as exited: its parent may not reap it soon)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is the answer


def _watch_parent(parent_pid: int) -> None:
    """A pool worker outliving its parent (kill -9, a closed terminal) would hold its memory forever."""
    while _process_alive(parent_pid):
        time.sleep(_WATCHDOG_S)
    os._exit(1)


def resolve(function: str) -> Callable[..., Any]:
    module, _, name = function.partition(":")
    if not module or not name:
        raise ValueError(f"task function must be 'module:function', got {function!r}")
    return getattr(importlib.import_module(module), name)


def _result_paths(results_dir: Path, digest: str) -> tuple[Path, Path]:
    return results_dir / f"{digest}.json", results_dir / f"{digest}.failed.json"


def execute_task(function: str, kwargs: dict[str, Any], key: str, digest: str, results_dir: str,
                 meta: dict[str, Any] | None = None, write: bool = True, *, worker: bool = True) -> dict[str, Any]:
    """Run one task and (by default) write its record atomically.  Never raises for task errors.

    In a worker process (``worker``) threads are limited to one; the serial in-process mode
    leaves the caller's thread settings alone.
    """
    if worker:
        limit_threads()
    start = time.perf_counter()
    record: dict[str, Any] = {"key": key, "digest": digest, "function": function, "meta": meta or {},
                              "host": platform.node(), "pid": os.getpid(), "started": time.time()}
    try:
        value = resolve(function)(**kwargs)
        record.update(status="done", value=value)
    except Exception as exc:  # recorded, the run goes on
        message = str(exc) if isinstance(exc, NACError) else f"{type(exc).__name__}: {exc}"
        # A NACError (bad input) fails again for the same inputs and parameters, which the digest
        # pins: such failures are reused on rerun; other errors (crashes, bugs) are retried.
        record.update(status="failed", error=message, error_type=type(exc).__name__,
                      deterministic=isinstance(exc, NACError))
    record["seconds"] = round(time.perf_counter() - start, 4)
    if write:
        write_record(Path(results_dir), record)
    return record


def write_record(results_dir: Path, record: dict[str, Any]) -> None:
    done_path, failed_path = _result_paths(results_dir, record["digest"])
    if record["status"] == "done":
        atomic_write_text(done_path, strict_json(record, default=str))
        if failed_path.exists():
            failed_path.unlink(missing_ok=True)
    else:
        atomic_write_text(failed_path, strict_json(record, default=str))


def read_record(results_dir: str | Path, digest: str, *, input_failures: bool = False) -> dict[str, Any] | None:
    """The finished record of a task digest, or None (a corrupt file counts as unfinished).

    With ``input_failures`` a recorded bad-input failure (deterministic for this digest) is
    returned too, so a rerun reports it without recomputing.
    """
    done, failed = _result_paths(Path(results_dir), digest)
    for path in (done, failed) if input_failures else (done,):
        if not path.is_file():
            continue
        try:
            record = read_json(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("%s: unreadable result record; recomputing", path)
            continue
        if record.get("status") == "done" or record.get("deterministic"):
            return record
    return None


def discard_records(results_dir: str | Path, digests: Iterable[str]) -> None:
    """Forget finished or failed records (``--force``): the next run recomputes those tasks."""
    for digest in digests:
        for path in _result_paths(Path(results_dir), digest):
            path.unlink(missing_ok=True)


# ---- parent side ------------------------------------------------------------------------------

def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def run_tasks(tasks: Iterable[Task], results_dir: str | Path, *, mode: str | None = None, jobs: int | None = None,
              scheduler: str | Any | None = None, stage: str = "tasks", progress: ProgressCallback | None = None,
              progress_mode: str | None = None, cancel: CancelToken | None = None,
              preload: Iterable[str] = (), cost: Callable[[Task], float] | None = None) -> RunSummary:
    """Run ``tasks``, skipping those already finished in ``results_dir``; return a :class:`RunSummary`.

    ``mode``: ``"serial"``, ``"process"`` (default; ``jobs`` workers, default all cores) or
    ``"dask"`` (``scheduler`` is a ``tcp://host:port`` address or a ``distributed.Client``;
    giving ``scheduler`` implies dask).  ``preload``: modules the process-pool workers import
    at start-up (the task functions' modules are added automatically).  ``cost``: estimated
    relative run time of a task, called for unfinished tasks only; the pool and Dask start the
    costliest first (results keep task order).  Raises :class:`CancelledError` when ``cancel``
    is set; finished tasks stay on disk.
    """
    tasks = list(tasks)
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:5]
        raise InputError(f"duplicate task keys: {dup}")
    if mode is None:
        mode = "dask" if scheduler is not None else "process"
    if mode not in MODES:
        raise InputError(f"runner mode must be one of {MODES}, got {mode!r}")
    if mode == "dask" and scheduler is None:
        raise InputError("dask mode needs a scheduler address (tcp://host:port) or a distributed.Client")
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    cancel = cancel or CancelToken()
    start = time.perf_counter()
    summary = RunSummary(total=len(tasks), mode=mode)

    digests = {t.key: t.digest() for t in tasks}
    summary.digests = digests
    values: dict[str, Any] = {}
    todo: list[Task] = []
    for t in tasks:
        record = read_record(results_dir, digests[t.key], input_failures=True)
        if record is None:
            todo.append(t)
        elif record["status"] == "done":
            values[t.key] = record["value"]
            summary.reused += 1
        else:
            summary.failures[t.key] = record["error"]
            summary.failed += 1
            summary.reused_failed += 1

    def on_record(record: dict[str, Any], bar: Progress) -> None:
        if record["status"] == "done":
            values[record["key"]] = record["value"]
            summary.computed += 1
        else:
            summary.failures[record["key"]] = record["error"]
            summary.failed += 1
        bar.update(1, record["key"])

    with Progress(len(tasks), stage, mode=progress_mode, callback=progress) as bar:
        if summary.reused or summary.failed:
            bar.update(summary.reused + summary.failed, f"{summary.reused} already finished")
        try:
            if todo:
                if mode == "serial" or (mode == "process" and (jobs or default_jobs()) == 1 and len(todo) == 1):
                    summary.workers = 1
                    _run_serial(todo, digests, results_dir, cancel, lambda r: on_record(r, bar))
                elif mode == "process":
                    todo = longest_first(todo, cost)
                    summary.workers = min(jobs or default_jobs(), len(todo))
                    _run_pool(todo, digests, results_dir, cancel, lambda r: on_record(r, bar), summary.workers,
                              preload)
                else:
                    todo = longest_first(todo, cost)
                    summary.workers = _run_dask(todo, digests, results_dir, cancel, lambda r: on_record(r, bar),
                                                scheduler)
        except CancelledError:
            summary.cancelled = True
            raise
        except KeyboardInterrupt:  # the CLI's signal handler: one cancel path for every caller
            cancel.cancel()
            summary.cancelled = True
            raise CancelledError("cancelled by a signal") from None
        finally:
            summary.seconds = time.perf_counter() - start
            summary.results = {k: values[k] for k in keys if k in values}
            summary.failures = {k: summary.failures[k] for k in keys if k in summary.failures}
    return summary


def longest_first(tasks: list[Task], cost: Callable[[Task], float] | None) -> list[Task]:
    """Tasks by decreasing estimated cost (stable; unchanged without ``cost``).

    Longest-processing-time-first keeps N workers busy until the end: the last tasks to start
    are the short ones, so the idle tail is at most one short task (Graham's 4/3 bound).
    """
    if cost is None:
        return list(tasks)
    costs = {t.key: float(cost(t)) for t in tasks}
    return sorted(tasks, key=lambda t: -costs[t.key])


def _task_args(t: Task, digests: dict[str, str], results_dir: Path) -> tuple:
    return (t.function, t.kwargs, t.key, digests[t.key], str(results_dir), t.meta)


def _run_serial(todo, digests, results_dir, cancel, on_record) -> None:
    for t in todo:
        cancel.check()
        on_record(execute_task(*_task_args(t, digests, results_dir), worker=False))


def _pool_context(preload: Iterable[str] = ()):
    """The multiprocessing context of the pool.

    forkserver: workers fork from a clean single-threaded server (never from a parent that holds
    ITK/Dask/tqdm threads), with the task modules imported once in the server.  The server
    lives as long as this process; its preload list is fixed when it starts.
    """
    import multiprocessing as mp

    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(sorted({"NACResponseLib.runner", *preload}))  # no effect once running
    return ctx


def prestart_workers(preload: Iterable[str] = ()) -> None:
    """Start the pool's fork server now, without waiting for it.

    It imports ``preload`` (e.g. pyradiomics, ~0.5 s) in its own process while the caller plans
    its tasks, instead of after; call it before a process-pool :func:`run_tasks`.  A no-op
    without forkserver (macOS spawn, Windows) or when the server already runs.
    """
    ctx = _pool_context(preload)
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _run_pool(todo, digests, results_dir, cancel, on_record, workers: int, preload) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = _pool_context([*preload, *(t.function.partition(":")[0] for t in todo)])
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(os.getpid(),))
    futures = {}
    try:
        for t in todo:
            futures[pool.submit(execute_task, *_task_args(t, digests, results_dir))] = t
        pending = set(futures)
        while pending:
            cancel.check()
            finished, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            for fut in finished:
                t = futures[fut]
                try:
                    record = fut.result()
                except BrokenProcessPool as exc:
                    record = _crash_record(t, digests, f"worker process died ({exc}); out of memory?")
                on_record(record)
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _stop_pool(pool) -> None:
    """Cancel what is queued and terminate the running workers (a task in flight is lost, not
    half-written: results are written atomically).  Without this, interpreter exit would join the
    pool and every queued task would still run."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)  # forgets the processes: listed first
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 3.0
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()


def _crash_record(t: Task, digests, error: str) -> dict[str, Any]:
    return {"key": t.key, "digest": digests[t.key], "status": "failed", "error": error, "meta": t.meta}


def _run_dask(todo, digests, results_dir, cancel, on_record, scheduler) -> int:
    from distributed import Client, as_completed

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler, set_as_default=False)
    own_client = client is not scheduler
    futures = {}
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        # Higher priority first: the scheduler hands out the (longest-first) submission order.
        for i, t in enumerate(todo):
            fut = client.submit(execute_task, *_task_args(t, digests, results_dir), pure=False,
                                key=f"nacresponse-{t.key}-{digests[t.key][:12]}", priority=len(todo) - i)
            futures[fut] = t
        with client.as_current():  # as_completed looks up the current client
            pending = as_completed(list(futures))
            while not pending.is_empty():
                cancel.check()
                batch = pending.next_batch(block=False)
                if not batch:
                    time.sleep(_POLL_S)
                    continue
                for fut in batch:
                    t = futures[fut]
                    try:
                        record = fut.result()
                    except Exception as exc:  # worker died, task lost
                        record = _crash_record(t, digests, f"dask task failed ({type(exc).__name__}: {exc})")
                    # Remote workers may not share our disk: make sure the record exists locally.
                    if record["status"] == "done" and read_record(results_dir, record["digest"]) is None:
                        write_record(results_dir, record)
                    on_record(record)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        if own_client:
            client.close()
    return n_workers


def local_cluster(n_workers: int = 2, preload: Iterable[str] = (), **kwargs: Any):
    """A loopback ``distributed.LocalCluster`` with process workers of one thread each (tests, laptops).

    ``preload``: modules every worker imports when it starts (``dask worker --preload MODULE`` on
    a real cluster), so the first tasks do not pay for importing e.g. pyradiomics.
    """
    import dask
    from distributed import LocalCluster

    env = {name: "1" for name in _THREAD_ENV}
    opts = {"n_workers": n_workers, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
            "dashboard_address": None, "silence_logs": logging.ERROR, "preload": list(preload)}
    opts.update(kwargs)
    # The worker's statistical profiler samples the task thread every 10 ms; on pyradiomics'
    # deep stacks that costs ~6 % of the task time (measured), so it is off.
    config = {"distributed.nanny.pre-spawn-environ": env, "distributed.worker.profile.enabled": False}
    with dask.config.set(config):
        return LocalCluster(**opts)
