"""The local Batch API server that the models of one host process share (dbt with
``enrich_offline``): started by the first model that needs it, stopped when the last one is done.

``enrich run --offline`` starts one server for the whole run; dbt builds each model on its own,
from several threads at once, and two servers over one folder would trip over each other's
files. dbt gives its models nothing else they share, so this is the one place where enrich keeps
state for the whole process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..server import Running, offline


class SharedServer:
    """One offline server per project folder, shared by whoever uses it at the moment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[Path, tuple[Running, ExitStack, int]] = {}

    @contextmanager
    def serving(self, project_dir: Path) -> Iterator[Running]:
        """The server for `project_dir` (its folder under ``target/local-batch-api``, as with
        ``enrich run --offline``) while the block runs."""
        key = project_dir.resolve()
        with self._lock:
            running, stack, users = self._servers.get(key) or self._start(key)
            self._servers[key] = (running, stack, users + 1)
        try:
            yield running
        finally:
            with self._lock:
                running, stack, users = self._servers[key]
                self._servers[key] = (running, stack, users - 1)
                if users == 1:
                    del self._servers[key]
                    stack.close()

    @staticmethod
    def _start(project_dir: Path) -> tuple[Running, ExitStack, int]:
        stack = ExitStack()
        return stack.enter_context(offline(project_dir)), stack, 0


SHARED = SharedServer()
