"""Exceptions that carry enough context for a user to fix their input.

Every error raised on bad input names the file (or manifest row) and the problem.
The CLI turns :class:`NACError` into a one-line message and exit code 2.
"""

from __future__ import annotations


class NACError(Exception):
    """Base class for errors caused by the user's data or arguments (not by a bug)."""


class InputError(NACError):
    """A file is missing, unreadable, corrupt, or holds unusable values (NaN, empty mask)."""


class ExistingResultError(InputError):
    """The output folder already holds a finished result made from other inputs or parameters
    (finished results are never overwritten)."""


class ManifestError(NACError):
    """The study manifest or clinical table is malformed."""


class GeometryMismatchError(NACError):
    """Two images that must share a voxel grid do not."""


class MissingTimepointError(NACError):
    """A patient lacks a timepoint or image role that the requested work needs."""


class CancelledError(NACError):
    """The user cancelled a long-running operation."""
