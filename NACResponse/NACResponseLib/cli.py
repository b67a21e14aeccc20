"""The ``nacresponse`` command.

Subcommands live in ``NACResponseLib/commands/<name>.py``; each module defines
``register(subparsers)`` and is discovered automatically, so a new command group adds a file and
touches nothing else.  Each run gets a cancel token as ``args.cancel`` (set by SIGINT, SIGTERM
and SIGHUP); long commands pass it to the runner, and nothing imports this module back.

Exit codes (one meaning each; the Slicer runner reads them):

===  ==========================================================================================
0    success
1    finished, but some cases failed; the rest is kept (validation found errors, too)
2    bad input or usage: the message names the file and the problem
3    the file system refused: read-only study folder, disk full, permission denied
4    the study catalogue (SQLite) is locked by another program or damaged
5    a text file is not in a readable encoding
70   internal error (a bug): the traceback is printed, please report it
130  cancelled: finished work is kept and a rerun resumes
===  ==========================================================================================
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import signal
import sqlite3
import sys
import threading
import traceback

from . import __version__
from .errors import CancelledError, NACError
from .progress import CancelToken, set_default_mode

EXIT_OK, EXIT_FAILURES, EXIT_INPUT, EXIT_CANCELLED = 0, 1, 2, 130
EXIT_FILESYSTEM, EXIT_CATALOGUE, EXIT_ENCODING, EXIT_INTERNAL = 3, 4, 5, 70
CANCEL_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nacresponse",
        description="NAC response imaging: studies, radiomics, reader agreement, segmentation, "
        "response models and microcalcification extent.",
    )
    parser.add_argument("--version", action="version", version=f"nacresponse {__version__}")
    parser.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                        help="progress display: a bar (default), JSON lines on stdout (for the Slicer "
                        "background runner), or none")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def install_signal_handlers(cancel: CancelToken) -> dict:
    """First signal: set ``cancel`` and interrupt the main thread, which stops the workers and
    keeps finished work.  A second one exits at once (no waiting on threads that may hang).

    Returns the previous handlers (empty off the main thread, where Python allows none).
    """
    if threading.current_thread() is not threading.main_thread():
        return {}

    def on_signal(signum, frame) -> None:  # noqa: ARG001
        if cancel.cancelled:
            os.write(2, b"nacresponse: cancelled again; exiting now\n")
            os._exit(EXIT_CANCELLED)
        cancel.cancel()
        raise KeyboardInterrupt

    return {signum: signal.signal(signum, on_signal) for signum in CANCEL_SIGNALS}


def _filesystem_message(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    hint = {errno.ENOSPC: "the disk is full; free space and rerun (finished work is kept)",
            errno.EROFS: "the folder is read-only; copy the study somewhere writable",
            errno.EACCES: "permission denied; check who owns the study folder",
            getattr(errno, "EDQUOT", -1): "the disk quota is exhausted; free space and rerun"}.get(exc.errno)
    return f"{where}{hint or exc.strerror or exc}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    set_default_mode(args.progress)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    args.cancel = CancelToken()
    previous = install_signal_handlers(args.cancel)
    prefix = f"nacresponse {args.command}"
    try:
        return int(args.func(args) or 0)
    except (KeyboardInterrupt, CancelledError):
        args.cancel.cancel()
        print("nacresponse: cancelled; finished work is kept and a rerun resumes", file=sys.stderr)
        return EXIT_CANCELLED
    except NACError as exc:
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:
        print(f"{prefix}: error: {_filesystem_message(exc)}", file=sys.stderr)
        return EXIT_FILESYSTEM
    except sqlite3.Error as exc:
        print(f"{prefix}: error: the study catalogue cannot be used ({type(exc).__name__}: {exc}); another "
              "program may hold it, or it is damaged (restore catalogue.sqlite from a backup)", file=sys.stderr)
        return EXIT_CATALOGUE
    except UnicodeError as exc:
        print(f"{prefix}: error: a text file is not UTF-8 or Latin-1 ({exc}); save it as UTF-8", file=sys.stderr)
        return EXIT_ENCODING
    except Exception as exc:  # a bug: show where, and keep 1 for "some cases failed"
        traceback.print_exc()
        print(f"{prefix}: internal error (a bug, please report it): {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        for signum, handler in previous.items():  # main() called in-process (tests, the Python API)
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
