"""What running nodes returns: a :class:`NodeResult` per node, gathered in a :class:`RunResult`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["success", "warn", "unchanged", "error", "skipped"]


@dataclass(frozen=True)
class NodeResult:
    """The outcome of one seed or model."""

    name: str
    kind: Literal["seed", "model"]
    path: str
    status: Status
    started_at: datetime
    seconds: float
    message: str
    rows_affected: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    """Every node a command touched, in the order they finished."""

    results: tuple[NodeResult, ...]
    started_at: datetime
    finished_at: datetime

    @property
    def ok(self) -> bool:
        """True when no node failed or was skipped because of a failure."""
        return all(r.status in ("success", "warn", "unchanged") for r in self.results)

    def by_status(self, status: Status) -> list[NodeResult]:
        """The results with one status."""
        return [r for r in self.results if r.status == status]
