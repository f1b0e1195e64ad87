"""Errors raised by enrich.

Every error a user can cause is an :class:`EnrichError`; its message names the file, line, model or
key at fault and says what to do next. Anything else escaping enrich is a bug.

    EnrichError
    ├── ProjectError        settings, files and model config (names the file and key)
    │   └── SeedError       a seed CSV that cannot be loaded (names the file and line)
    ├── SqlError            a model that does not parse (``models/x.sql:LINE:COL``)
    ├── DependencyError     unknown ``ref``/``source`` ("did you mean …"), or a cycle
    │                       (``a → b → a``)
    ├── SelectionError      a ``--select``/``--exclude`` selector that is malformed
    ├── ExecutionError      DuckDB rejected a model while it ran
    │   ├── CostLimitError  the estimated cost is over ``--max-cost`` (nothing was sent)
    │   └── ResourceError   the disk or the memory ran out (names the setting to change)
    ├── ApiError            the API refused or could not be reached (never shows the key);
    │                       ``.status`` is its HTTP status, ``.ambiguous`` says a create may
    │                       have happened anyway
    └── Interrupted         the run was stopped (Ctrl-C) while it waited; batches in flight
                            are collected by the next run
"""

from __future__ import annotations


class EnrichError(Exception):
    """Base class of every error a user of enrich can cause."""


class ProjectError(EnrichError):
    """The project's settings, files or a model's config are wrong."""


class SeedError(ProjectError):
    """A seed CSV cannot be loaded."""


class SqlError(EnrichError):
    """A model's SQL does not parse; carries the file, line and column."""

    def __init__(self, message: str, *, path: str, line: int, col: int) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.col = col


class DependencyError(EnrichError):
    """A model refers to something that does not exist, or models form a cycle."""


class SelectionError(EnrichError):
    """A node selector is malformed."""


class ExecutionError(EnrichError):
    """DuckDB rejected a model while building it."""


class CostLimitError(ExecutionError):
    """The estimated cost of what a run would send is over the limit; nothing was sent."""


class ResourceError(ExecutionError):
    """The disk filled up or DuckDB ran out of memory; the message names the setting to change."""


# errno values of a write that found no room: ENOSPC, EFBIG (a size limit), EDQUOT.
NO_ROOM_ERRNOS = frozenset({28, 27, 122})


def no_room(where: str, said: str) -> ResourceError:
    """A write to `where` found no room on its disk."""
    return ResourceError(
        f"no room left to write {where} ({said}): free space on that disk, or point "
        "[tool.enrich] database / target_dir at a disk with room, then run again; nothing "
        "already answered is lost or paid for again"
    )


class ApiError(EnrichError):
    """The Batch or Files API refused a call or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.status = status
        # True when a call that creates something failed after it may have acted on the server.
        self.ambiguous = ambiguous


class Interrupted(EnrichError):
    """The run was stopped (Ctrl-C) while a model waited on its batches."""
