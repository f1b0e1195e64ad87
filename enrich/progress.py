"""Showing enrich models at work: a progress bar per batch on a terminal, else one line per change.

Part of the command line: the library reports :class:`EnrichEvent`s and the CLI hands them to a
:class:`ProgressDisplay` writing to its stderr. The only module that imports tqdm.
"""

from __future__ import annotations

import threading
from typing import Any, TextIO

from tqdm import tqdm

from .batch.options import EnrichEvent


class ProgressDisplay:
    """Turns events into bars (`tty`) or log lines on `stream`."""

    def __init__(self, stream: TextIO, tty: bool) -> None:
        self.stream, self.tty = stream, tty
        self._bars: dict[str, tqdm[Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, event: EnrichEvent) -> None:
        with self._lock:
            if self.tty and event.batch_id:
                self._bar(event)
            else:
                self._line(event)

    def close(self) -> None:
        """Finish every bar."""
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()

    def _line(self, event: EnrichEvent) -> None:
        where = f"{event.node}" + (f" {event.batch_id}" if event.batch_id else "")
        counts = ""
        if event.total:
            counts = f" ({event.completed}/{event.total} done, {event.failed} failed)"
        self.stream.write(f"  {where}: {event.message}{counts}\n")
        self.stream.flush()

    def _bar(self, event: EnrichEvent) -> None:
        assert event.batch_id is not None
        if event.batch_id not in self._bars:
            self._bars[event.batch_id] = tqdm(
                total=event.total or None, file=self.stream, unit="req", leave=True
            )
        bar = self._bars[event.batch_id]
        if event.total and bar.total != event.total:
            bar.total = event.total
        bar.n = event.completed + event.failed
        bar.set_description(f"{event.node} {event.batch_id[-8:]} {event.status}", refresh=False)
        bar.set_postfix(failed=event.failed, refresh=False)
        bar.refresh()
