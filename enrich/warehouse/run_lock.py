"""The run lock: one enrich run, seed or preview at a time acts on a database.

DuckDB's own lock on the file is held only while enrich writes (see
:meth:`~enrich.warehouse.db.Database.released`), so readers get in while batches are out; it
cannot keep two runs apart for the hours a batch takes. This lock, a file beside the database,
is held for the whole run. The operating system lets go of it when the process ends, however it
ends, so a killed run never leaves it stuck.

The only module that imports filelock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from ..errors import ExecutionError


def lock_path(database: str) -> Path:
    """The lock file of a database file."""
    return Path(database + ".lock")


@contextmanager
def holding(database: str) -> Iterator[None]:
    """Hold the run lock of `database` throughout, or stop at once if another run holds it."""
    path = lock_path(database)
    lock = filelock.FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout as err:
        raise ExecutionError(
            f"{database} is in use by another enrich run (it holds {path.name}): wait for it "
            "to finish and run again; batches it submitted are collected by the next run, "
            "never sent twice"
        ) from err
    try:
        yield
    finally:
        lock.release()


@contextmanager
def holding_if_free(database: str) -> Iterator[bool]:
    """Hold the run lock of `database` throughout if no run holds it: yields whether it does."""
    lock = filelock.FileLock(str(lock_path(database)), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
