"""CLI subcommands: one module per command group, each with ``register(subparsers)``.

The helpers here are what every command file shares: the comma-list option parser and the one
way a study-level stage's result is printed.  (Their names must not be those of a command module:
``commands.report`` is the ``report`` command.)
"""

from __future__ import annotations


def comma_list(value: str | None) -> list[str] | None:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; None or an empty string -> None (the option's default)."""
    items = [v.strip() for v in value.split(",") if v.strip()] if value else []
    return items or None


def print_result(result) -> int:
    """Print a :class:`NACResponseLib.stage.StageResult` and return its exit code (1: some cases failed)."""
    print(result.message())
    return result.exit_code
