"""Task functions for the runner tests (importable by name in worker processes; no tests here)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def square(x: float, delay: float = 0.0) -> dict:
    if delay:
        time.sleep(delay)
    return {"x": x, "y": x * x, "pid": os.getpid()}


def fail_on(x: float, bad: float) -> float:
    if x == bad:
        raise ValueError(f"x == {bad} is not allowed")
    return x + 0.5


def read_number(path: str) -> float:
    return float(Path(path).read_text())


def thread_settings() -> dict:
    import SimpleITK as sitk

    return {"itk": sitk.ProcessObject_GetGlobalDefaultNumberOfThreads(), "omp": os.environ.get("OMP_NUM_THREADS")}


def reject(x: float) -> float:
    from NACResponseLib.errors import InputError

    raise InputError(f"input {x} is unusable")
