"""The ``nacresponse`` command.

Subcommands live in ``NACResponseLib/commands/<name>.py``; each module defines
``register(subparsers)`` and is discovered automatically, so a new stage adds a file and
touches nothing else.  Exit codes: 0 success, 1 finished with failures (e.g. some cases failed,
validation found errors), 2 bad input or usage, 130 cancelled.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import signal
import sys

from . import __version__
from .errors import CancelledError, NACError
from .progress import CancelToken, set_default_mode

EXIT_OK, EXIT_FAILURES, EXIT_INPUT, EXIT_CANCELLED = 0, 1, 2, 130

#: Cancelled by SIGINT/SIGTERM; long-running commands pass it to the runner.
CANCEL = CancelToken()


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


def _on_signal(signum, frame) -> None:  # noqa: ARG001
    CANCEL.cancel()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    set_default_mode(args.progress)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        return int(args.func(args) or 0)
    except (KeyboardInterrupt, CancelledError):
        CANCEL.cancel()
        print("nacresponse: cancelled; finished work is kept and a rerun resumes", file=sys.stderr)
        return EXIT_CANCELLED
    except NACError as exc:
        print(f"nacresponse {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
