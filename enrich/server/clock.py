"""Server time: the wall clock sped up by a time scale, or a manual clock tests move by hand."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds since the epoch, as the server sees them."""

    def __call__(self) -> float: ...


class ScaledClock:
    """Wall-clock time running `scale` times faster from the moment it is made."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._origin = time.time()

    def __call__(self) -> float:
        return self._origin + (time.time() - self._origin) * self.scale


class ManualClock:
    """A clock that stands still until :meth:`advance` moves it; for tests."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward and return the new time."""
        with self._lock:
            self._now += seconds
            return self._now
