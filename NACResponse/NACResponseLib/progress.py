"""Progress reporting and cancellation shared by the CLI, the cohort runner and the Slicer layer.

``Progress`` drives a tqdm bar on a terminal, prints JSON lines for a parent process
(``--progress json``: the Slicer background runner parses them), calls an optional callback,
or stays silent.  ``CancelToken`` is checked between tasks.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable

ProgressCallback = Callable[[int, int, str], None]  # (done, total, message)

MODES = ("bar", "json", "none")
_default_mode = "bar"


def set_default_mode(mode: str) -> None:
    """Chosen once by the CLI's global ``--progress`` option."""
    global _default_mode
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}")
    _default_mode = mode


def json_progress_line(done: int, total: int, message: str = "", stage: str = "") -> str:
    return json.dumps({"type": "progress", "stage": stage, "done": done, "total": total,
                       "fraction": (done / total) if total else 0.0, "message": message})


class Progress:
    """Context manager: ``with Progress(total, "radiomics") as p: p.update(1, "P001")``."""

    def __init__(self, total: int, stage: str, *, mode: str | None = None,
                 callback: ProgressCallback | None = None, stream=None):
        self.total, self.stage, self.done = int(total), stage, 0
        self.mode = mode or _default_mode
        self.callback = callback
        self.stream = stream or sys.stderr
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            # disable=None: a bar on a terminal, nothing in a log file
            self._bar = tqdm(total=self.total, desc=stage, file=self.stream, leave=True, disable=None)

    def update(self, n: int = 1, message: str = "") -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if message:
                self._bar.set_postfix_str(message[:40])
        elif self.mode == "json":
            print(json_progress_line(self.done, self.total, message, self.stage), file=sys.stdout, flush=True)
        if self.callback is not None:
            self.callback(self.done, self.total, message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CancelToken:
    """Thread-safe cancellation flag; ``check()`` raises :class:`CancelledError` once set."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            from .errors import CancelledError

            raise CancelledError("cancelled by the user")
